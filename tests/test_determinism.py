"""A file decodes bit-identically whatever the number of torch threads, in any process.

The entropy decoder must recompute the encoder's means and scales bit for bit (see
``tcmcodec.exact`` for the default exact numerics, ``latent_coder.FLOAT_PATH_THREADS`` and ``layers/pointwise.py`` for the float ones), and the synthesis must give
the same pixels, or the same file would decode differently on another machine. Here one
process encodes (with 3 threads) and records its own reconstruction (``compress`` then
``decompress`` in that process); other processes decode with 1, 2 and 3 threads. Every
result must be identical.

Configurations: the bundled default model on a 256x384 crop of Kodak's kodim01 (or a
synthetic image when the data is absent), and the authors' ``tcm-s`` architecture with
random weights (seeded, the same in every process) on a 256x256 image.
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import numpy as np
import pytest

from tcmcodec import zoo

from conftest import KODAK, PYTHON, REPO

pytestmark = pytest.mark.slow

COMMON = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    torch.set_num_threads(int(sys.argv[1]))
    import tcmcodec
    from tcmcodec.config import PRESETS

    def model_for(name):
        if name == "default":
            return None
        torch.manual_seed(0)
        model = tcmcodec.TCM(PRESETS[name])
        model.update(force=True)
        return model.eval()
    """
)

ENCODE = COMMON + textwrap.dedent(
    """
    from PIL import Image
    from tcmcodec import container
    from tcmcodec.codec import resolve_model

    out_dir, kodak = sys.argv[2], sys.argv[3]
    assert torch.get_num_threads() == int(sys.argv[1])
    for name, (height, width) in (("default", (256, 384)), ("tcm-s", (256, 256))):
        try:
            rgb = np.asarray(Image.open(kodak).convert("RGB"))[:height, :width]
        except OSError:
            yy, xx = np.mgrid[0:height, 0:width]
            rgb = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 7 % 256)], -1)
            rgb = (rgb + np.random.default_rng(0).integers(0, 24, rgb.shape)).clip(0, 255).astype(np.uint8)
        rgb = np.ascontiguousarray(rgb)
        model = model_for(name)
        data = tcmcodec.encode(rgb, model=model)
        open(f"{out_dir}/{name}.tcm", "wb").write(data)
        # the encoder-side reconstruction: the model's own compress -> decompress, here
        net = resolve_model(model) if model is not None else tcmcodec.load_model()
        stream = container.parse(data)
        level = tcmcodec.zoo.quality_to_level(stream.quality, net.rate_levels) if net.rate_levels else None
        left, right, top, bottom = stream.pad
        x = torch.nn.functional.pad(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255,
                                    (left, right, top, bottom))
        with torch.inference_mode():
            out = net.compress(x, level)
            assert (out["strings"][0][0], out["strings"][1][0]) == stream.strings
            rec = net.decompress(out["strings"], out["shape"], level)["x_hat"]
        rec = rec[0, :, top:top + height, left:left + width].clamp(0, 1)
        np.save(f"{out_dir}/{name}-encoder.npy", torch.round(rec * 255).to(torch.uint8).permute(1, 2, 0).numpy())
    """
)

DECODE = COMMON + textwrap.dedent(
    """
    out_dir = sys.argv[2]
    for name in ("default", "tcm-s"):
        data = open(f"{out_dir}/{name}.tcm", "rb").read()
        image = tcmcodec.decode(data, model=model_for(name))
        assert torch.get_num_threads() == int(sys.argv[1])
        np.save(f"{out_dir}/{name}-threads{sys.argv[1]}.npy", np.asarray(image))
    """
)


def run(script: str, threads: int, *args: str) -> None:
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run([PYTHON, "-c", script, str(threads), *args], capture_output=True, text=True,
                          env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_decoding_is_bit_identical_across_processes_and_thread_counts(tmp_path):
    if not zoo.default_entry().available:
        pytest.skip("bundled weights are not installed")
    run(ENCODE, 3, str(tmp_path), str(KODAK / "kodim01.png"))
    for threads in (1, 2, 3):
        run(DECODE, threads, str(tmp_path))
    for name, shape in (("default", (256, 384, 3)), ("tcm-s", (256, 256, 3))):
        reference = np.load(tmp_path / f"{name}-encoder.npy")
        assert reference.shape == shape
        for threads in (1, 2, 3):
            decoded = np.load(tmp_path / f"{name}-threads{threads}.npy")
            assert decoded.shape == shape
            assert np.array_equal(decoded, reference), (
                f"{name}: decoding with {threads} thread(s) differs from the encoder's reconstruction "
                f"in {int((decoded != reference).any(axis=2).sum())} pixels"
            )
