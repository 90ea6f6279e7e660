"""Does rounding y towards its predicted mean pay (an encoder-side dead zone)? (not a test)

The encoder codes ``round(y - mu)``. Rounding with an offset, ``sign(r) * floor(|r| + theta)``
for r = y - mu, moves values towards the mean for theta < 0.5 (fewer bits, more distortion)
and away from it for theta > 0.5; the decoder is unchanged. For each theta, the mean
estimated bpp (the coded likelihoods of z and of the rounded y slices) and PSNR (8-bit
output) over the images at every rate level, and the BD-rate against plain rounding.

    python benchmarks/rounding_offset.py ../shared/data/kodak --images 1,7 --thetas 0.5,0.45,0.4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from tcmcodec.codec import load_model
from tcmcodec.evaluate.bdrate import bd_rate
from tcmcodec.image_io import load_image
from tcmcodec.image_tensors import crop_tensor, pad_amounts, pad_tensor, to_tensor
from tcmcodec.metrics import psnr_from_mse

PLAIN_ROUNDING = 0.5


def offset_round(residual: Tensor, theta: float) -> Tensor:
    return torch.sign(residual) * torch.floor(residual.abs() + theta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of images (e.g. Kodak)")
    p.add_argument("--model", default=None, help="registered variable-rate model (default: the bundled one)")
    p.add_argument("--images", default="1,7", help="1-based indexes into the sorted folder")
    p.add_argument("--thetas", default="0.5,0.45,0.4,0.55", help="rounding offsets (0.5: plain rounding)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    if not model.rate_levels:
        p.error("needs a variable-rate model (the BD-rate is over its levels)")
    thetas = [float(v) for v in args.thetas.split(",")]
    if PLAIN_ROUNDING not in thetas:
        thetas.insert(0, PLAIN_ROUNDING)
    files = sorted(f for f in Path(args.folder).iterdir() if f.suffix.lower() in {".png", ".jpg", ".jpeg"})
    images = [to_tensor(load_image(files[int(i) - 1]).rgb) for i in args.images.split(",")]
    bottleneck, conditional = model.entropy_bottleneck, model.gaussian_conditional
    # totals[theta][level] = [sum of bpp, sum of PSNR] over the images
    totals = {t: [[0.0, 0.0] for _ in range(model.rate_levels)] for t in thetas}
    with torch.no_grad():
        for x in images:
            pad = pad_amounts(*x.shape[-2:], model.config.pad_multiple)
            padded = pad_tensor(x, pad)
            pixels = x.shape[-2] * x.shape[-1]
            for level in range(model.rate_levels):
                y, z = model.analysis(padded, float(level))
                z_bits = float(-bottleneck(z, training=False)[1].log2().sum())
                medians = bottleneck._get_medians()
                means, scales = model.hyper_parameters(torch.round(z - medians) + medians, float(level))
                y_slices = y.chunk(model.config.num_slices, dim=1)
                for theta in thetas:
                    bits = [z_bits]

                    def quantize(index: int, mean: Tensor, scale: Tensor, theta: float = theta) -> Tensor:
                        y_hat = offset_round(y_slices[index] - mean, theta) + mean
                        bits.append(float(-conditional(y_hat, scale, mean, training=False)[1].log2().sum()))
                        return y_hat

                    x_hat = crop_tensor(model.synthesis(model._slice_loop(means, scales, quantize), float(level)), pad)
                    x_hat = torch.round(x_hat.clamp(0, 1) * 255) / 255
                    totals[theta][level][0] += sum(bits) / pixels
                    totals[theta][level][1] += psnr_from_mse(float((x_hat - x).square().mean()))
    count = len(images)
    curves = {t: [(b / count, q / count) for b, q in rows] for t, rows in totals.items()}
    plain = curves[PLAIN_ROUNDING]
    print(f"{count} images; per level bpp/PSNR; BD-rate against plain rounding (theta {PLAIN_ROUNDING})")
    for theta, curve in curves.items():
        bd = bd_rate([b for b, _ in plain], [q for _, q in plain], [b for b, _ in curve], [q for _, q in curve])
        points = " ".join(f"{b:.3f}/{q:.2f}" for b, q in curve)
        print(f"theta {theta:.2f}: {bd}  {points}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
