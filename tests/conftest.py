"""Shared fixtures: tiny random-weight models and their checkpoints (fast on 2 cores)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# keep the suite's CPU use predictable on small machines
torch.set_num_threads(int(os.environ.get("TCMCODEC_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"
TRAIN_DATA = SHARED / "data" / "train"


def make_model(preset: str = "tcm-tiny", seed: int = 0):
    from tcmcodec.config import PRESETS
    from tcmcodec.model import TCM

    torch.manual_seed(seed)
    model = TCM(PRESETS[preset])
    # random init leaves the bottleneck quantiles untrained; spread them a little
    model.update(force=True)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model():
    """A fixed-rate tcm-tiny with random weights (eval mode, CDFs built)."""
    return make_model("tcm-tiny")


@pytest.fixture(scope="session")
def tiny_vr_model():
    """A variable-rate tcm-tiny-vr with random weights."""
    return make_model("tcm-tiny-vr")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model) -> Path:
    """tiny_model saved as the authors save theirs: {"state_dict": ...}."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth.tar"
    torch.save({"state_dict": tiny_model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_vr_checkpoint(tmp_path_factory, tiny_vr_model) -> Path:
    """tiny_vr_model exported with its config (variable-rate models need it)."""
    from tcmcodec.checkpoints import export_weights

    path, _ = export_weights(tiny_vr_model, tmp_path_factory.mktemp("ckpt") / "tiny-vr.pt")
    return path


def run_cli(*args: str) -> int:
    """Run ``tcm ARGS`` in-process; returns the exit status."""
    from tcmcodec.cli import main

    return main([str(a) for a in args])


PYTHON = sys.executable
