"""Coverage-guided fuzzing of ``.tcm`` decoding: container, range decoder, networks.

Each input is one mode byte and a file. Mode bit 0 set: the file's CRC-32 is recomputed
before decoding, so mutations of the header fields and of the entropy-coded strings reach
the decoder instead of stopping at the checksum. The file is decoded with a fixed tiny model
(tests/golden.py: deterministic weights) and a 256x256-pixel limit, so every input does
bounded work. Decoding must end in an image or a :class:`tcmcodec.TcmError`; anything else
(another exception, a crash, a hang, memory without bound) is a finding.

    python fuzz/fuzz_decode.py -runs=1000000 -timeout=20 -rss_limit_mb=3072 NEW_CORPUS fuzz/corpus
    python fuzz/fuzz_decode.py --make-corpus fuzz/corpus     # rebuild the seed files
    TCMCODEC_FUZZ_MEMORY_EVERY=10000 python fuzz/fuzz_decode.py ...  # log memory every 10000 inputs

``fuzz/corpus/regression-*.bin`` are inputs that once failed; they stay in the seed corpus, so
every run (and tests/test_fuzz.py) decodes them again.

Coverage is collected on the modules that read the file's bytes (:data:`INSTRUMENTED`).
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
#: declared images above this many pixels are refused on the header
MAX_PIXELS = 256 * 256
#: the modules whose coverage guides the fuzzer: everything that reads the file's bytes. The
#: networks and the exact arithmetic are left out: they see only tensors of validated shapes,
#: and atheris (3.0) keeps the result of every traced comparison of tensors alive, so memory
#: would grow with each input. atheris selects whole top-level packages (``include``), so the
#: rest of tcmcodec is named in ``exclude`` (:func:`uninstrumented_modules`).
INSTRUMENTED = ["tcmcodec.container", "tcmcodec.codec", "tcmcodec.coding", "tcmcodec.image_io",
                "tcmcodec.alpha_plane", "tcmcodec.zoo", "tcmcodec.errors"]
#: mode byte bit: recompute the CRC-32 of the file before decoding
REPAIR_CHECKSUM = 0x01
#: environment variable: print the process's memory every this many inputs (0: never)
MEMORY_LOG_ENV = "TCMCODEC_FUZZ_MEMORY_EVERY"


def uninstrumented_modules() -> list[str]:
    """Every tcmcodec module outside :data:`INSTRUMENTED`, found on disk (nothing imported)."""
    import importlib.util

    spec = importlib.util.find_spec("tcmcodec")
    root = Path(spec.origin).parent
    names = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        names.append(".".join(("tcmcodec", *parts)))
    return [name for name in names
            if not any(name == kept or name.startswith(kept + ".") for kept in INSTRUMENTED)]


def _load():
    import torch

    torch.set_num_threads(1)
    import golden
    from tcmcodec import codec

    return codec, codec.resolve_model(golden.deterministic_model())


def decode_input(codec, model, data: bytes) -> None:
    """Decode one fuzzer input; raises only what decoding a bad file may raise (TcmError)."""
    from tcmcodec.errors import TcmError

    if not data:
        return
    mode, body = data[0], data[1:]
    if mode & REPAIR_CHECKSUM and len(body) >= 4:
        body = body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))
    try:
        codec.decode(body, model=model, max_pixels=MAX_PIXELS)
    except TcmError:
        pass


class MemoryLog:
    """Prints, every ``every`` inputs, the resident set size beside what Python itself holds
    (allocated blocks, objects the collector tracks, live tensors), so growth of the process can
    be told apart from growth of the decoder's objects."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if not self.every or self.count % self.every:
            return
        import gc

        import torch

        gc.collect()
        objects = gc.get_objects()
        tensors = sum(1 for item in objects if isinstance(item, torch.Tensor))
        rss_mb = _resident_mb()
        print(f"memory inputs={self.count} rss_mb={rss_mb:.0f} python_blocks={sys.getallocatedblocks()} "
              f"gc_objects={len(objects)} tensors={tensors}", file=sys.stderr, flush=True)


def _resident_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0.0
    import os

    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_corpus(folder: Path) -> None:
    """Seed files: the tiny model's files in every colour mode and a few sizes and qualities,
    each with and without the checksum repair."""
    import numpy as np

    import tcmcodec

    codec, model = _load()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = [((16, 16, 3), 0), ((48, 64, 3), 50), ((64, 48, 4), 100), ((32, 40), 30), ((20, 24, 2), 70)]
    for number, (shape, quality) in enumerate(cases):
        ramp = np.linspace(0, 255, int(np.prod(shape))).reshape(shape)
        image = np.clip(ramp + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
        data = tcmcodec.encode(image, model=model, quality=quality)
        for mode in (0, REPAIR_CHECKSUM):
            (folder / f"seed-{number}-{mode}.bin").write_bytes(bytes([mode]) + data)


def main(argv: list[str]) -> None:
    if argv[1:2] == ["--make-corpus"]:
        make_corpus(Path(argv[2]))
        return
    import atheris

    import os

    with atheris.instrument_imports(include=INSTRUMENTED, exclude=uninstrumented_modules()):
        codec, model = _load()
    memory = MemoryLog(int(os.environ.get(MEMORY_LOG_ENV, "0")))

    def one_input(data: bytes) -> None:
        decode_input(codec, model, data)
        memory.tick()

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
