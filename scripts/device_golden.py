"""Decode the golden files (tests/data/golden) on a device and compare their symbols.

For a lent GPU: ``python scripts/device_golden.py --device cuda`` prints one JSON line per
file (symbols identical to the recorded ones, largest pixel difference against the recorded
image) and exits 1 if any file's symbols differ. ``--device cpu`` runs the same check here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)

    import golden
    from PIL import Image

    from tcmcodec import codec

    manifest = json.loads(golden.MANIFEST.read_text())
    bundled = codec.load_model(None, device=args.device)
    tiny = codec.resolve_model(golden.deterministic_model().to(args.device))
    failures = 0
    for name, case in manifest.items():
        data = (golden.GOLDEN / f"{name}.tcm").read_bytes()
        model = tiny if case["model"] == "tiny" else bundled
        result = codec.decode_stream_details(codec.read_stream(data, max_pixels=None), model)
        same = result.symbol_digests == (case["y_symbols_sha256"], case["z_symbols_sha256"])
        decoded = golden.expected_pixels(result.image, case["block_means"] is not None).astype(np.int16)
        expected = np.asarray(Image.open(golden.GOLDEN / case["expected"])).astype(np.int16)
        largest = int(np.abs(decoded - expected).max())
        failures += not same or largest > golden.TOLERANCE
        print(json.dumps({"file": name, "device": args.device, "symbols_identical": same,
                          "max_pixel_difference": largest}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
