"""Pack a training set into a small folder of crops that fits a lent GPU machine's upload.

A device call carries at most 64 MiB with the repository, and ``../shared`` does not travel,
so GPU training reads crops made here: up to ``--per-image`` random ``--size`` squares per
training image, one of every image before a second of any (the images ``tcm train
--val-split`` would hold out are skipped, so validation there and here stays honest), stored
as JPEG of ``--quality`` with full-resolution chroma (4:4:4: the model should not learn
subsampled colour) until ``--budget-mb`` is reached. Deterministic for a given ``--seed``. Output folder (default ``.train-crops``) is ignored by git.

    python scripts/pack_crops.py ../shared/data/train --val-split 16
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

from PIL import Image

from tcmcodec.train.data import list_images, split_holdout

FULL_CHROMA = 0  # Pillow's code for 4:4:4 JPEG sampling


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="folder of training images")
    p.add_argument("--out", default=".train-crops")
    p.add_argument("--size", type=int, default=256, help="crop side (pixels)")
    p.add_argument("--per-image", type=int, default=2, help="crops taken from each image")
    p.add_argument("--quality", type=int, default=88, help="JPEG quality of the stored crops (4:4:4)")
    p.add_argument("--budget-mb", type=float, default=48.0, help="stop when the crops reach this size")
    p.add_argument("--val-split", type=int, default=16, help="as in tcm train: these images are skipped")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    paths = list_images(args.data)
    if args.val_split:
        paths, _ = split_holdout(paths, args.val_split)
    rng = random.Random(args.seed)
    rng.shuffle(paths)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = int(args.budget_mb * 2**20)
    total = count = 0
    skipped: set[Path] = set()
    # one crop of every image before a second of any, so a tight budget still covers them all
    for path in [p for _ in range(args.per_image) for p in paths]:
        if path in skipped:
            continue
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except OSError:
            skipped.add(path)
            continue
        if min(img.size) < args.size:
            skipped.add(path)
            continue
        left = rng.randrange(img.width - args.size + 1)
        top = rng.randrange(img.height - args.size + 1)
        crop = img.crop((left, top, left + args.size, top + args.size))
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=args.quality, subsampling=FULL_CHROMA)
        if total + buffer.tell() > budget:
            break
        (out / f"crop{count:05d}.jpg").write_bytes(buffer.getvalue())
        total += buffer.tell()
        count += 1
    print(f"{count} crops of {args.size}x{args.size}, {total / 2**20:.1f} MiB in {out} "
          f"({len(skipped)} images skipped: unreadable or smaller than the crop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
