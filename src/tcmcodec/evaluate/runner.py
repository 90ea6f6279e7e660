"""Run a dataset x codecs x qualities and write CompressAI-style results, incrementally.

For every codec the runner writes, in the output folder,

- ``<codec>.rows.jsonl``: one JSON line per (image, quality), appended and flushed as soon as
  that image is done, so an interrupted run keeps every finished row;
- ``<codec>.json``: CompressAI's results format, rewritten after every row::

      {"name": "JPEG", "description": "...",
       "results": {"quality": [...], "bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
                   "encoding_time": [...], "decoding_time": [...]},
       "settings": {...}, "dataset": "...", "images": [...], "num_images": N,
       "complete": true/false, "per_image": [row, ...]}

  ``results`` holds dataset means for the qualities whose every image is done (sorted by
  bpp); unfinished qualities only appear in ``per_image``. Means are taken per image, as in
  CompressAI: mean bpp, mean PSNR, mean MS-SSIM (images too small for MS-SSIM are left out of
  that mean; if all are, the value is ``null``), mean encode / decode seconds.

Times are wall-clock seconds of ``codec.encode`` and ``codec.decode`` alone (no file I/O, no
metrics, no model loading: :meth:`Codec.prepare` runs first, untimed).

With ``workers > 1`` the tasks run in a process pool (one task = one codec, quality and
image); with ``workers == 1`` they run in this process.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from tcmcodec.errors import ImageError, TcmError
from tcmcodec import image_io, metrics
from tcmcodec.evaluate.codecs import Codec
from tcmcodec.evaluate.results_file import CodecResultFile, quality_key




def list_images(path: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """The images of a dataset folder (sorted by name), or a single image file."""
    p = Path(path)
    if not p.exists():
        raise TcmError(f"dataset not found: {p}")
    files = [p] if p.is_file() else image_io.list_images(p)
    if not files:
        raise TcmError(f"no images ({', '.join(sorted(image_io.IMAGE_SUFFIXES))}) in {p}")
    if limit is not None:
        if limit < 1:
            raise TcmError("--limit must be at least 1")
        files = files[:limit]
    return files


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image: {path}") from None


def measure(codec: Codec, quality: Any, rgb: np.ndarray, image_name: str = "") -> dict:
    """Encode, decode and measure one image; returns a per-image row."""
    h, w = rgb.shape[:2]
    t0 = time.perf_counter()
    data = codec.encode(rgb, quality)
    t1 = time.perf_counter()
    rec = codec.decode(data)
    t2 = time.perf_counter()
    rec = metrics.as_rgb_uint8(rec)
    if rec.shape != rgb.shape:
        raise TcmError(f"{codec.name} decoded {image_name} to shape {rec.shape}, expected {rgb.shape}")
    return {
        "image": image_name,
        "quality": quality,
        "height": h,
        "width": w,
        "bytes": len(data),
        "bpp": metrics.bpp(len(data), h, w),
        "psnr-rgb": metrics.psnr(rgb, rec),
        "ms-ssim-rgb": metrics.ms_ssim(rgb, rec),
        "encoding_time": t1 - t0,
        "decoding_time": t2 - t1,
    }


# ---------------------------------------------------------------------------------------------
# worker side


# per process: (run id, codec name) -> codec instance, and the (run id, codec, quality)
# already prepared. The run id keeps instances of different runs apart (forked workers
# inherit the parent's dicts).
_WORKER_CODECS: dict[tuple[str, str], Codec] = {}
_WORKER_PREPARED: set[tuple[str, str, str]] = set()


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass


def _run_task(run_id: str, codec: Codec, quality: Any, path: str, image_name: str) -> dict:
    # keep one instance per codec and run in each process, so loaded models are reused
    codec = _WORKER_CODECS.setdefault((run_id, codec.name), codec)
    key = (run_id, codec.name, quality_key(quality))
    if key not in _WORKER_PREPARED:
        codec.prepare(quality)
        _WORKER_PREPARED.add(key)
    return measure(codec, quality, load_rgb(path), image_name)


# ---------------------------------------------------------------------------------------------
# result files


@dataclass
class EvalResult:
    results: dict[str, dict]  # codec name -> results dict (as written)
    files: dict[str, Path]  # codec name -> JSON path
    skipped: dict[str, str]  # codec name -> reason


def run_evaluation(
    images: Sequence[str | os.PathLike],
    codecs: Sequence[Codec],
    out_dir: str | os.PathLike,
    qualities: dict[str, list] | None = None,
    workers: int = 1,
    progress: bool = True,
    resume: bool = False,
    dataset: str | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalResult:
    """Evaluate ``codecs`` on ``images``; see the module docstring for what is written.

    Codecs that are not available are skipped (their reason is logged and returned in
    ``EvalResult.skipped``). On ``KeyboardInterrupt`` the files hold everything finished so far
    and the interrupt is re-raised.
    """
    from tqdm import tqdm

    log = log or (lambda msg: print(msg, file=sys.stderr))
    qualities = dict(qualities or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in images]
    names = _image_names(paths)
    if workers < 1:
        raise TcmError("--workers must be at least 1")

    skipped: dict[str, str] = {}
    files: dict[str, CodecResultFile] = {}
    tasks: list[tuple[Codec, Any, Path, str]] = []
    for codec in codecs:
        reason = codec.unavailable_reason()
        if reason is not None:
            skipped[codec.name] = reason
            log(f"skipping {codec.name}: {reason}")
            continue
        qs = list(qualities.get(codec.name) or codec.default_qualities)
        rf = CodecResultFile(codec, out, qs, names, str(dataset or (paths[0].parent if paths else "")), codec.settings)
        done = rf.start(resume)
        files[codec.name] = rf
        for q in qs:
            for p, n in zip(paths, names):
                if (n, quality_key(q)) not in done:
                    tasks.append((codec, q, p, n))

    run_id = uuid.uuid4().hex
    interrupted = False
    bar = tqdm(total=len(tasks), desc="eval", unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        if workers == 1:
            _init_worker()
            for codec, q, p, n in tasks:
                bar.set_postfix_str(f"{codec.name} q={q}", refresh=False)
                row = _run_task(run_id, codec, q, str(p), n)
                files[codec.name].add(row)
                bar.update(1)
        else:
            _run_pool(run_id, tasks, files, workers, bar)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        bar.close()
        for rf in files.values():
            rf.write_json()
        for key in [k for k in _WORKER_CODECS if k[0] == run_id]:
            del _WORKER_CODECS[key]
        if interrupted:
            log(f"interrupted: partial results kept in {out}")
    return EvalResult(
        results={name: rf.to_dict() for name, rf in files.items()},
        files={name: rf.json_path for name, rf in files.items()},
        skipped=skipped,
    )


def _run_pool(run_id: str, tasks, files, workers: int, bar) -> None:
    import multiprocessing as mp

    # "spawn" would re-import torch in every worker; "fork" is fine here (no threads yet
    # in the parent that the workers need) and much faster to start on Linux.
    method = "fork" if sys.platform.startswith("linux") else None
    ctx = mp.get_context(method) if method else None
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, mp_context=ctx)
    pending: dict = {}
    queue = list(tasks)
    try:
        # keep the pool busy without queueing everything (so an interrupt stops quickly)
        def submit_next():
            codec, q, p, n = queue.pop(0)
            fut = pool.submit(_run_task, run_id, codec, q, str(p), n)
            pending[fut] = (codec, q)

        while queue and len(pending) < 2 * workers:
            submit_next()
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                codec, q = pending.pop(fut)
                row = fut.result()
                files[codec.name].add(row)
                bar.set_postfix_str(f"{codec.name} q={q}", refresh=False)
                bar.update(1)
                if queue:
                    submit_next()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _image_names(paths: Iterable[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        names = [str(p) for p in paths]
    return names
