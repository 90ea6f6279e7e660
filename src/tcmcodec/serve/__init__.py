"""``tcm serve``: a local web page that compares TCM with JPEG, WebP and AVIF at equal file
size (needs ``pip install 'tcmcodec[serve]'``)."""

#: largest upload accepted (bytes)
DEFAULT_MAX_UPLOAD = 32 * 2**20
#: largest image coded (pixels): a 4-megapixel photo takes TCM seconds on two cores
DEFAULT_MAX_PIXELS = 4 * 2**20
