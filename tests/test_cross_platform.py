"""Files written under one CPU kernel set decode under every other, with identical symbols.

Each kernel set this machine offers (tcmcodec.exact.kernel_sets: the machine's own, AVX2,
baseline; AVX-512 where present) stands in for another kind of computer. Encoders run in
subprocesses restricted to each set, with 1 or 2 threads; decoders in subprocesses
restricted to each set, with the other thread count, decode every file. Symbols must be
identical (the symbol checks and their SHA-256), pixels within one level. A file coded with
the float numerics decodes where it was written and is refused, with a message saying why,
where the kernels compute other bits.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tcmcodec.exact import kernel_sets

from conftest import PYTHON, REPO

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import golden, tcmcodec
    from tcmcodec import codec
    action, folder, tag = sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    bundled, tiny = tcmcodec.load_model(None), codec.resolve_model(golden.deterministic_model())
    rgb = golden.source_rgb()
    cases = {"q0": (bundled, rgb, 0), "q100": (bundled, rgb, 100), "gray": (bundled, rgb.mean(-1).astype(np.uint8), 45),
             "tiny": (tiny, rgb, 70)}
    if action == "encode":
        for name, (model, image, quality) in cases.items():
            (folder / f"{name}.{tag}.tcm").write_bytes(tcmcodec.encode(image, model=model, quality=quality))
        (folder / f"float.{tag}.tcm").write_bytes(tcmcodec.encode(rgb, quality=60, numerics="float"))
    else:
        for path in sorted(folder.glob("*.tcm")):
            model = tiny if path.name.startswith("tiny") else None
            try:
                result = codec.decode_stream_details(codec.read_stream(path.read_bytes()), model)
                np.save(folder / f"{path.stem}.by-{tag}.npy", np.asarray(result.image))
                print(json.dumps([path.name, list(result.symbol_digests)]))
            except tcmcodec.TcmError as exc:
                print(json.dumps([path.name, str(exc)]))
    """
)


def _run(action: str, folder: Path, kernel_set: str, threads: int) -> list:
    env = kernel_sets.environment(kernel_set, threads)
    env.update(PYTHONWARNINGS="ignore", TCMCODEC_TEST_THREADS=str(threads),
               PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""))
    proc = subprocess.run([PYTHON, "-c", SCRIPT, str(REPO / "tests"), action, str(folder), kernel_set],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[")]


@pytest.mark.slow
def test_files_decode_with_identical_symbols_under_every_kernel_set_and_thread_count(tmp_path):
    sets = kernel_sets.available(PYTHON)
    assert len(sets) >= 2, f"this machine offers only the kernel sets {sets}"
    for number, name in enumerate(sets):
        _run("encode", tmp_path, name, 1 + number % 2)
    decoded: dict[str, dict[str, object]] = {}
    for number, name in enumerate(sets):
        for file_name, outcome in _run("decode", tmp_path, name, 2 - number % 2):
            decoded.setdefault(file_name, {})[name] = outcome
    assert len(decoded) == 5 * len(sets)
    for encoder in sets:  # float numerics: decoded on their own kind of computer, refused elsewhere
        by_decoder = decoded.pop(f"float.{encoder}.tcm")
        assert isinstance(by_decoder[encoder], list)
        for outcome in by_decoder.values():
            assert outcome == by_decoder[encoder] or "coded with float numerics" in outcome, by_decoder
    for file_name, by_decoder in decoded.items():
        outcomes = list(by_decoder.values())
        assert all(isinstance(o, list) for o in outcomes), (file_name, by_decoder)  # no decoder refused
        assert all(o == outcomes[0] for o in outcomes), (file_name, by_decoder)     # identical symbols
        stem = file_name[: -len(".tcm")]
        pixels = [np.load(tmp_path / f"{stem}.by-{name}.npy").astype(np.int16) for name in sets]
        assert all(int(np.abs(p - pixels[0]).max()) <= 1 for p in pixels), file_name


OPS_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, torch
    import torch.nn.functional as F
    from tcmcodec.exact import elementary, reductions as mode
    torch.set_num_threads(2)
    index = torch.arange(1 << 16, dtype=torch.float64)
    # values from exact arithmetic alone: the same inputs in every process
    x = (torch.remainder(index * 0.6180339887498949, 1.0) * 16 - 8).float().reshape(64, 32, 32)
    y = (torch.remainder(index * 0.7548776662466927, 1.0) * 4 - 2).float().reshape(64, 32, 32)
    results = {
        "add": x + y, "sub": x - y, "mul": x * y, "div": x / (y.abs() + 0.5), "floor": (x * 3).floor(),
        "round": (x * 3).round(), "clamp": x.clamp(-1, 1), "max": torch.maximum(x, y), "abs": x.abs(),
        "sqrt": elementary.sqrt(x.abs()), "exp": elementary.exp(x.double()), "tanh": elementary.tanh(x),
        "sigmoid": elementary.sigmoid(x), "gelu": elementary.fast_gelu(x), "erfc": elementary.erfc(x.double()),
        "softmax": mode.exact_softmax(x, -1), "layer_norm": mode.exact_layer_norm(x, (32,), y[0, 0], y[1, 0]),
        "linear": mode.exact_linear(x, y[0], y[1, 0]), "matmul": mode.exact_matmul(x, y.transpose(-2, -1)),
        "conv": mode.exact_conv2d(x[None, :16], y.reshape(-1)[: 8 * 16 * 9].reshape(8, 16, 3, 3), y[2, 0, :8], 1, 1),
    }
    print(json.dumps({k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in results.items()}))
    """
)


@pytest.mark.slow
def test_exact_operations_give_the_same_bits_under_every_kernel_set():
    """The element-wise operations the exact mode lets through, and its own replacements,
    bit for bit under each kernel set (PyTorch's vectorised float sqrt, SLEEF's, does not:
    that is why the mode corrects it)."""
    outputs = {}
    for name in kernel_sets.available(PYTHON):
        env = kernel_sets.environment(name)
        env.update(PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""), PYTHONWARNINGS="ignore")
        proc = subprocess.run([PYTHON, "-c", OPS_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    first = next(iter(outputs.values()))
    for name, digests in outputs.items():
        assert digests == first, {op: name for op in digests if digests[op] != first[op]}
