"""Where a model loses quality: the transforms or the quantization (not a test).

For each rate level, the mean PSNR over the images of
  * g_s(g_a(x)) with no quantization at all (the ceiling of the transforms),
  * g_s(round(g_a(x))) (plain rounding, no context model),
  * the model's forward pass (rounding around the predicted means, LRP).
If the first is close to the others, more rate cannot buy quality: the transforms need
more capacity or training.

    python benchmarks/transform_ceiling.py ../shared/data/kodak --images 6 --levels 0,5
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from tcmcodec.codec import load_model
from tcmcodec.image_io import load_image
from tcmcodec.image_tensors import crop_tensor, pad_amounts, pad_tensor, to_tensor


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    mse = torch.mean((x_hat.clamp(0, 1) - x) ** 2)
    return float(-10 * torch.log10(mse))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of images (e.g. Kodak)")
    p.add_argument("--model", default=None, help="registered model (default: the bundled one)")
    p.add_argument("--images", type=int, default=6, help="first N images of the folder")
    p.add_argument("--levels", default="0,5", help="rate levels of a variable-rate model")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    files = sorted(f for f in Path(args.folder).iterdir() if f.suffix.lower() in {".png", ".jpg", ".jpeg"})
    images = [to_tensor(load_image(f).rgb) for f in files[: args.images]]
    levels = [float(v) for v in args.levels.split(",")] if model.rate_levels else [None]
    print(f"{len(images)} images; PSNR dB: no quantization / rounding only / forward pass")
    with torch.no_grad():
        for level in levels:
            rows = []
            for x in images:
                pad = pad_amounts(*x.shape[-2:], model.config.pad_multiple)
                padded = pad_tensor(x, pad)
                y, _ = model.analysis(padded, level)
                rate = None if level is None else torch.full((1,), level)
                forward = model(padded, rate) if rate is not None else model(padded)
                outputs = (model.synthesis(y, level), model.synthesis(torch.round(y), level), forward["x_hat"])
                rows.append([psnr(crop_tensor(out, pad), x) for out in outputs])
            means = [statistics.fmean(r[i] for r in rows) for i in range(3)]
            print(f"level {level}: {means[0]:.2f} / {means[1]:.2f} / {means[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
