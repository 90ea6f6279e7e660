"""The codec runtime is lean: the base install requires nothing of CompressAI or its heavy
dependencies; the codec commands import torch, Pillow, numpy and the range coder and
nothing of those; ``tcm info`` not even torch; a command whose optional extra is missing
says which one to install.

Imports are per process, so the end-to-end checks run fresh interpreters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
from PIL import Image

from tcmcodec.cli import main
from tcmcodec.codec import encode_image

from conftest import PYTHON, REPO

#: packages the codec runtime must not import (CompressAI and what it pulls in)
NOT_IMPORTED = ("compressai", "torch_geometric", "torchvision", "pandas", "scipy", "matplotlib")


def _base_requirements(distribution: str, seen: set[str]) -> set[str]:
    """Names of every distribution that ``distribution`` requires, transitively, without
    extras (markers evaluated for this interpreter), from the installed metadata."""
    from packaging.requirements import Requirement

    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name not in seen:
            seen.add(name)
            try:
                _base_requirements(name, seen)
            except metadata.PackageNotFoundError:
                pass  # required but not installed here: its own requirements are unknown
    return seen


def test_the_base_install_requires_nothing_of_compressai_or_its_dependencies():
    required = _base_requirements("tcmcodec", set())
    assert {"torch", "numpy", "pillow", "constriction"} <= required
    forbidden = {"compressai", "torch-geometric", "torchvision", "pandas", "scipy", "matplotlib"}
    assert not required & forbidden


def test_the_base_install_accepts_numpy_2():
    from packaging.requirements import Requirement

    for line in metadata.requires("tcmcodec") or []:
        requirement = Requirement(line)
        if requirement.name == "numpy":
            assert requirement.specifier.contains("2.2.0") and requirement.specifier.contains("1.26.4")


def _run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line, returned parsed."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


LOADED = (
    "import sys\n"
    f"loaded = sorted({{n.split('.')[0] for n in sys.modules}} & set({NOT_IMPORTED!r}))\n"
)


@pytest.mark.slow
def test_encode_and_decode_import_nothing_of_compressai_and_give_the_same_bytes(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    src, coded, decoded = tmp_path / "in.png", tmp_path / "x.tcm", tmp_path / "x.png"
    Image.fromarray(rgb).save(src)
    result = _run_python(
        "import json\n"
        "from tcmcodec.cli import main\n"
        f"rc = [main(['encode', {str(src)!r}, {str(coded)!r}, '-q', '40', '--threads', '1']),\n"
        f"      main(['decode', {str(coded)!r}, {str(decoded)!r}, '--threads', '1'])]\n"
        + LOADED +
        # PNG in and out needs Pillow's common plugins only, not all of them (40 ms more)
        "print(json.dumps({'rc': rc, 'loaded': loaded, 'all_plugins': 'PIL.PdfImagePlugin' in sys.modules}))\n"
    )
    assert result == {"rc": [0, 0], "loaded": [], "all_plugins": False}
    assert coded.read_bytes() == encode_image(rgb, None, 40).data
    assert Image.open(decoded).size == (96, 64)


def test_info_reads_the_header_without_torch(tmp_path, tiny_model):
    encoded = tmp_path / "x.tcm"
    encoded.write_bytes(encode_image(np.zeros((24, 40, 3), np.uint8), tiny_model).data)
    result = _run_python(
        "import json, sys, io, contextlib\n"
        "from tcmcodec.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    rc = main(['info', {str(encoded)!r}, '--json'])\n"
        "print(json.dumps({'rc': rc, 'bytes': json.loads(out.getvalue())['bytes'],\n"
        "                  'torch': 'torch' in sys.modules}))\n"
    )
    assert result == {"rc": 0, "bytes": encoded.stat().st_size, "torch": False}


def test_a_missing_optional_package_is_a_one_line_error_naming_the_extra(monkeypatch, capsys, tmp_path):
    for name in [n for n in sys.modules if n.startswith("tcmcodec.train")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pytorch_msssim", None)  # what a missing package looks like to import
    rc = main(["train", "--model", "tcm-tiny", "--data", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err == "tcm train: error: this needs the optional package pytorch_msssim: pip install 'tcmcodec[train]'"


def test_decoded_png_compression_level_changes_the_file_size_not_the_pixels(tmp_path):
    rng = np.random.default_rng(4)
    rgb = np.clip(np.cumsum(rng.integers(-8, 9, (64, 128, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    coded = tmp_path / "x.tcm"
    coded.write_bytes(encode_image(rgb, None, 60).data)
    sizes, pixels = {}, {}
    for level in (0, 9):
        out = tmp_path / f"level{level}.png"
        assert main(["decode", str(coded), str(out), "--png-compression", str(level), "--threads", "1"]) == 0
        sizes[level], pixels[level] = out.stat().st_size, np.asarray(Image.open(out))
    assert sizes[9] < sizes[0] and np.array_equal(pixels[0], pixels[9])
