"""One codec's results in the output folder: the rows file and CompressAI's results JSON.

``<codec>.rows.jsonl`` gets one JSON line per finished (image, quality); ``<codec>.json`` is
rewritten (atomically) after every row with the dataset means of the complete qualities (see
:mod:`tcmcodec.evaluate.runner` for the format). :func:`load_results` reads ours and
CompressAI's published files.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tcmcodec.atomic_files import atomic_write_bytes
from tcmcodec.errors import TcmError
from tcmcodec.evaluate.codec_base import Codec

#: the per-image measurements averaged into CompressAI's ``results``
RESULT_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


def safe_name(name: str) -> str:
    """A file-name stem for a codec name (``tcm:foo`` -> ``tcm-foo``)."""
    s = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-")
    return s or "codec"


def quality_key(q: Any) -> str:
    return json.dumps(q)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else x  # inf stays (json writes Infinity) - only for lossless
    return x


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    return _nan_to_none(obj)


def summarize(rows: Sequence[dict], qualities: Sequence[Any], image_names: Sequence[str]) -> dict:
    """Dataset means per quality over complete qualities, sorted by bpp."""
    by_q: dict[str, list[dict]] = {}
    for r in rows:
        by_q.setdefault(quality_key(r["quality"]), []).append(r)
    wanted = set(image_names)
    points = []
    for q in qualities:
        rs = by_q.get(quality_key(q), [])
        if {r["image"] for r in rs} != wanted:
            continue  # unfinished quality
        point = {"quality": q}
        for k in RESULT_KEYS:
            vals = np.array([np.nan if r.get(k) is None else float(r[k]) for r in rs], dtype=np.float64)
            if k == "ms-ssim-rgb":
                vals = vals[~np.isnan(vals)]
                point[k] = float(np.mean(vals)) if len(vals) else math.nan
            else:
                point[k] = float(np.mean(vals))
        points.append(point)
    points.sort(key=lambda p: p["bpp"])
    results: dict[str, list] = {"quality": [p["quality"] for p in points]}
    for k in RESULT_KEYS:
        results[k] = [p[k] for p in points]
    return results


@dataclass
class CodecResultFile:
    """The two files of one codec in the output folder."""

    codec: Codec
    out_dir: Path
    qualities: list
    image_names: list[str]
    dataset: str
    settings: dict
    rows: list[dict] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return safe_name(self.codec.name)

    @property
    def json_path(self) -> Path:
        return self.out_dir / f"{self.stem}.json"

    @property
    def rows_path(self) -> Path:
        return self.out_dir / f"{self.stem}.rows.jsonl"

    def start(self, resume: bool) -> set[tuple[str, str]]:
        """Open the rows file; with ``resume``, keep matching finished rows and return their keys."""
        done: set[tuple[str, str]] = set()
        if resume and self.rows_path.exists() and self.json_path.exists():
            try:
                old = json.loads(self.json_path.read_text())
            except (OSError, ValueError):
                old = {}
            if old.get("settings") == _clean(self.settings):
                wanted_q = {quality_key(q) for q in self.qualities}
                for line in self.rows_path.read_text().splitlines():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a killed run
                    key = (row.get("image"), quality_key(row.get("quality")))
                    if key[0] in self.image_names and key[1] in wanted_q and key not in done:
                        self.rows.append(row)
                        done.add(key)
        with open(self.rows_path, "w") as f:
            for row in self.rows:
                f.write(json.dumps(_clean(row)) + "\n")
        self.write_json()
        return done

    def add(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.rows_path, "a") as f:
            f.write(json.dumps(_clean(row)) + "\n")
            f.flush()
        self.write_json()

    def to_dict(self) -> dict:
        results = summarize(self.rows, self.qualities, self.image_names)
        order = {quality_key(q): i for i, q in enumerate(self.qualities)}
        per_image = sorted(self.rows, key=lambda r: (order.get(quality_key(r["quality"]), 1 << 30), r["image"]))
        return {
            "name": self.codec.label,
            "description": self.codec.description,
            "codec": self.codec.name,
            "learned": self.codec.is_learned,
            "results": results,
            "settings": self.settings,
            "dataset": self.dataset,
            "num_images": len(self.image_names),
            "images": list(self.image_names),
            "qualities": list(self.qualities),
            "complete": len(per_image) == len(self.image_names) * len(self.qualities),
            "per_image": per_image,
        }

    def write_json(self) -> None:
        atomic_write_bytes(self.json_path, (json.dumps(_clean(self.to_dict()), indent=1) + "\n").encode())


def load_results(path: str | os.PathLike) -> dict:
    """Read a results JSON in CompressAI's format (ours or a reference)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise TcmError(f"results file not found: {p}") from None
    except ValueError as exc:
        raise TcmError(f"not a JSON results file: {p} ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "bpp" not in data["results"]:
        raise TcmError(f"not a CompressAI results file (needs results.bpp): {p}")
    data.setdefault("name", p.stem)
    return data
