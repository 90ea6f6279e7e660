"""A short coverage-guided fuzz run of .tcm decoding (fuzz/fuzz_decode.py, atheris): every
mutated file ends in an image or a TcmError, with no crash, hang or runaway memory. The
long runs (a million inputs and more) are in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess

import pytest

from conftest import PYTHON, REPO

#: inputs per run in the test suite (about 30 seconds on one core)
RUNS = 3000
#: the harness logs its memory every this many inputs
MEMORY_EVERY = 1000
#: live tensors that bounded caches (attention masks per image size) may add after the first
#: log; a leak of one tensor per input would add 2000
CACHE_SLACK = 300


def _harness():
    spec = importlib.util.spec_from_file_location("fuzz_decode", REPO / "fuzz" / "fuzz_decode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_the_byte_reading_modules_are_instrumented():
    """atheris instruments whole top-level packages unless modules are excluded by name; the
    networks and the exact arithmetic must be excluded (traced tensor comparisons leak)."""
    excluded = set(_harness().uninstrumented_modules())
    assert {"tcmcodec.model", "tcmcodec.exact.elementary", "tcmcodec.exact.reductions",
            "tcmcodec.layers.attention", "tcmcodec.cli.decode", "tcmcodec.cli"} <= excluded
    assert not excluded & {"tcmcodec.container", "tcmcodec.codec", "tcmcodec.coding.range_coder", "tcmcodec.alpha_plane",
                           "tcmcodec.coding.latent_coder"}


def test_short_fuzz_run_of_the_decoder_finds_nothing(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install tcmcodec[dev] on Linux)")
    new = tmp_path / "corpus"
    new.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", TCMCODEC_FUZZ_MEMORY_EVERY=str(MEMORY_EVERY),
               PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [PYTHON, str(REPO / "fuzz" / "fuzz_decode.py"), f"-runs={RUNS}", "-seed=7", "-timeout=30",
         "-rss_limit_mb=3072", f"-artifact_prefix={tmp_path}/", str(new), str(REPO / "fuzz" / "corpus")],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )
    findings = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))]
    assert proc.returncode == 0 and not findings, (findings, proc.stderr[-3000:])
    # libFuzzer counts the inputs it re-reads when it reloads the corpus folders, so a run
    # may report a few more than asked
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done and int(done.group(1)) >= RUNS, proc.stderr[-2000:]
    # no objects pile up: the live tensors after the first and the last thousand inputs
    tensors = [int(n) for n in re.findall(r"memory inputs=\d+ .* tensors=(\d+)", proc.stderr)]
    assert len(tensors) == RUNS // MEMORY_EVERY and tensors[-1] - tensors[0] <= CACHE_SLACK, tensors
