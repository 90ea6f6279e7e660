"""Plot the bundled model's Kodak quality against the compute in its weights (not a test).

Reads docs/results/kodak/training-compute.csv (one row per export of the bundled lineage:
CPU-hours, GPU-minutes, highest PSNR, PSNR BD-rate against JPEG) and draws the top PSNR
against CPU-hours with the transforms' ceiling and the target of a high-quality model.

    python scripts/plot_training_compute.py --ceiling 31.1 --out docs/results/kodak/training-compute.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "docs" / "results" / "kodak" / "training-compute.csv"
#: the top-rate PSNR the high-quality range asks for (dB)
TARGET_DB = 34.0


def read_rows(path: Path) -> list[dict[str, float | None]]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return [{key: float(value) if value else None for key, value in row.items()} for row in csv.DictReader(lines)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ceiling", type=float, required=True,
                    help="PSNR of g_s(g_a(x)) without quantization at the top level (benchmarks/transform_ceiling.py)")
    ap.add_argument("--out", type=Path, default=DATA.with_suffix(".png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(DATA)
    hours = [row["cpu_hours"] for row in rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.plot(hours, [row["top_psnr_db"] for row in rows], marker="o", markersize=3, label="highest quality level")
    ax.axhline(args.ceiling, color="grey", linestyle="--", linewidth=1, label="the shipped transforms without quantization")
    ax.axhline(TARGET_DB, color="tab:red", linestyle=":", linewidth=1, label=f"target {TARGET_DB:g} dB")
    for row in rows:
        if row["gpu_minutes"] and row is rows[-1]:
            ax.annotate(f"+ {row['gpu_minutes']:.0f} GPU-minutes", (row["cpu_hours"], row["top_psnr_db"]),
                        textcoords="offset points", xytext=(-90, -14), fontsize=8)
    ax.set_xlabel("CPU-hours in the weights (2-core Xeon / EPYC)")
    ax.set_ylabel("Kodak PSNR at the top rate (dB)")
    ax.set_ylim(25, TARGET_DB + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
