"""Rate-distortion evaluation: classical codecs, metrics, BD-rates, plots and crop figures.

Modules
-------
- PSNR and MS-SSIM on 8-bit RGB come from :mod:`tcmcodec.metrics` (shared with the codec).
- :mod:`~tcmcodec.evaluate.codecs`: the codec registry (JPEG, WebP, AVIF, JPEG XL, HEIC,
  JPEG 2000 and our own TCM codec), each with ``available()``, ``encode()``, ``decode()``,
  a default quality sweep and the ``settings`` recorded in results.
- :mod:`~tcmcodec.evaluate.runner`: dataset x codecs x qualities, written incrementally.
- :mod:`~tcmcodec.evaluate.bdrate`: BD-rates with the ``bjontegaard`` package and an overlap rule.
- :mod:`~tcmcodec.evaluate.plots`: the two-panel rate-distortion plot.
- :mod:`~tcmcodec.evaluate.compare`: the side-by-side crop figure.

Everything heavy (torch, matplotlib, codec plugins) is imported lazily.
"""

from __future__ import annotations
