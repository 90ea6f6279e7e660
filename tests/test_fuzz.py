"""A short coverage-guided fuzz run of .tcm decoding (fuzz/fuzz_decode.py, atheris): every
mutated file ends in an image or a TcmError, with no crash, hang or runaway memory. The
long runs (a million inputs and more) are in docs/benchmarks.md."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import PYTHON, REPO

#: inputs per run in the test suite (about 30 seconds on one core)
RUNS = 3000


def test_short_fuzz_run_of_the_decoder_finds_nothing(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install tcmcodec[dev] on Linux)")
    new = tmp_path / "corpus"
    new.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [PYTHON, str(REPO / "fuzz" / "fuzz_decode.py"), f"-runs={RUNS}", "-seed=7", "-timeout=30",
         "-rss_limit_mb=3072", f"-artifact_prefix={tmp_path}/", str(new), str(REPO / "fuzz" / "corpus")],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )
    findings = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))]
    assert proc.returncode == 0 and not findings, (findings, proc.stderr[-3000:])
    assert f"Done {RUNS} runs" in proc.stderr
