"""``python -m tcmcodec`` is the ``tcm`` command."""

import sys

from tcmcodec.cli import main

sys.exit(main())
