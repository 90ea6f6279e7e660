"""Fast start-up of the ``tcm`` command (:mod:`tcmcodec.cli._startup`).

The placeholders must change nothing but the time: the same bytes come out of ``tcm encode``,
nothing real of PyTorch Geometric / torchvision / pandas is loaded, a CompressAI that needs
more than the placeholders is imported as usual, and ``tcm info`` needs no torch at all.
Placeholders act only in a fresh process, so the end-to-end checks run subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from tcmcodec.cli import _startup
from tcmcodec.codec import encode_image

from conftest import PYTHON, REPO

SKIPPED_ROOTS = sorted({name.split(".")[0] for name in _startup.PLACEHOLDERS})


def _run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line, returned parsed."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    full_env.update({"TCM_FULL_IMPORTS": "0", **env})
    proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


REAL_MODULES = (
    "import sys\n"
    f"real = [n for n in {SKIPPED_ROOTS!r} if getattr(sys.modules.get(n), '__file__', None)]\n"
)


# --------------------------------------------------------------------------- placeholders


def test_placeholder_module_holds_exactly_the_listed_names():
    module = _startup._PlaceholderModule("torch_geometric.transforms")
    assert isinstance(module.BaseTransform, type) and isinstance(module.Center, type)
    with pytest.raises(AttributeError, match="TCM_FULL_IMPORTS=1"):
        module.Compose  # noqa: B018  (not listed: a clear AttributeError, not a silent stand-in)
    assert not hasattr(_startup._PlaceholderModule("pandas"), "DataFrame")  # duck-typing checks stay False


def test_placeholder_classes_refuse_to_be_used():
    module = _startup._PlaceholderModule("torch_geometric.transforms")

    class Subclass(module.BaseTransform):  # what CompressAI's point-cloud transforms do
        pass

    with pytest.raises(RuntimeError, match="not loaded by the tcm command"):
        Subclass()


def test_placeholder_decorator_factory_returns_what_it_decorates():
    module = _startup._PlaceholderModule("torch_geometric.data.datapipes")

    @module.functional_transform("some_name")
    class Transform:
        pass

    assert Transform.__name__ == "Transform"


# --------------------------------------------------------------------------- real processes


@pytest.mark.slow
def test_cli_encodes_the_same_bytes_without_loading_the_skipped_packages(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    src, coded, decoded = tmp_path / "in.png", tmp_path / "x.tcm", tmp_path / "x.png"
    Image.fromarray(rgb).save(src)
    result = _run_python(
        "import json\n"
        "from tcmcodec.cli import main\n"
        f"rc = [main(['encode', {str(src)!r}, {str(coded)!r}, '-q', '40', '--threads', '1']),\n"
        f"      main(['decode', {str(coded)!r}, {str(decoded)!r}, '--threads', '1'])]\n"
        + REAL_MODULES +
        "print(json.dumps({'rc': rc, 'real': real}))\n"
    )
    assert result == {"rc": [0, 0], "real": []}
    # this test process imported CompressAI the usual way: same model, same bytes
    assert coded.read_bytes() == encode_image(rgb, None, 40).data
    assert Image.open(decoded).size == (96, 64)


@pytest.mark.slow
def test_compressai_needing_more_than_placeholders_is_imported_as_usual():
    result = _run_python(
        "import json\n"
        "from tcmcodec.cli import _startup\n"
        "_startup.PLACEHOLDERS['torch_geometric.transforms'] = ('BaseTransform',)  # Center missing\n"
        "used = _startup.import_compressai()\n"
        "from compressai.entropy_models import EntropyBottleneck\n"
        "import torch\n"
        "eb = EntropyBottleneck(4); eb.update(force=True)\n"
        "ok = len(eb.compress(torch.zeros(1, 4, 2, 2))) == 1\n"
        + REAL_MODULES +
        "print(json.dumps({'used': used, 'ok': ok, 'real': real}))\n"
    )
    assert result == {"used": False, "ok": True, "real": SKIPPED_ROOTS}


def test_full_imports_variable_turns_the_placeholders_off():
    result = _run_python(
        "import json, sys\n"
        "from tcmcodec.cli import _startup\n"
        "print(json.dumps({'used': _startup.import_compressai(), 'imported': 'compressai' in sys.modules}))\n",
        TCM_FULL_IMPORTS="1",
    )
    assert result == {"used": False, "imported": False}


def test_info_reads_the_header_without_torch(tmp_path, tiny_model):
    encoded = tmp_path / "x.tcm"
    encoded.write_bytes(encode_image(np.zeros((24, 40, 3), np.uint8), tiny_model).data)
    result = _run_python(
        "import json, sys, io, contextlib\n"
        "from tcmcodec.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    rc = main(['info', {str(encoded)!r}, '--json'])\n"
        "print(json.dumps({'rc': rc, 'bytes': json.loads(out.getvalue())['bytes'],\n"
        "                  'torch': 'torch' in sys.modules}))\n"
    )
    assert result == {"rc": 0, "bytes": encoded.stat().st_size, "torch": False}
