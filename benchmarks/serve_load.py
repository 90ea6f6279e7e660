"""Load on ``tcm serve``: N concurrent uploads of one photo, all checked (not a test).

Starts the app with uvicorn on a free local port, uploads the photo N times at once from N
client threads (each asks for TCM, JPEG, WebP and AVIF at TCM's size), polls each job, and
checks every result: the ``.tcm`` download decodes to the PNG the page shows. Prints the
latency of each upload (submit to results) and their median; jobs run one after another on
the server, so the latency grows with the queue position.

    python benchmarks/serve_load.py ../shared/data/kodak/kodim23.png --clients 8
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

POLL_SECONDS = 0.1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _one(client, photo: bytes, quality: int) -> tuple[float, str]:
    """Upload, wait, check; returns (latency s, problem or '')."""
    from PIL import Image

    from tcmcodec import decode

    start = time.perf_counter()
    reply = client.post("/api/compare", files={"file": ("photo.png", photo, "image/png")},
                        data={"quality": str(quality), "codecs": "jpeg,webp,avif"})
    if reply.status_code != 202:
        return 0.0, f"HTTP {reply.status_code}: {reply.text}"
    job_id = reply.json()["id"]
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            break
        time.sleep(POLL_SECONDS)
    latency = time.perf_counter() - start
    if job["state"] == "failed":
        return latency, job["error"]
    tcm = job["results"]["codecs"][0]
    coded = client.get(f"/api/jobs/{job_id}/files/{tcm['download']}").content
    shown = np.asarray(Image.open(io.BytesIO(client.get(f"/api/jobs/{job_id}/files/{tcm['image']}").content)))
    if not np.array_equal(shown, np.asarray(decode(coded).convert("RGB"))):
        return latency, "the shown image is not the decoded .tcm"
    return latency, ""


def main() -> None:
    try:
        import httpx2 as httpx
    except ImportError:  # the older name of the same client
        import httpx
    import uvicorn

    from tcmcodec.serve.app import create_app

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--quality", type=int, default=60)
    args = ap.parse_args()
    photo = Path(args.image).read_bytes()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    results: list[tuple[float, str]] = [(0.0, "not run")] * args.clients
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        def run(index: int) -> None:
            results[index] = _one(client, photo, args.quality)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = time.perf_counter() - start
    server.should_exit = True
    latencies = sorted(latency for latency, _ in results)
    problems = [p for _, p in results if p]
    print(f"{args.clients} concurrent uploads of {Path(args.image).name}: {args.clients - len(problems)} correct, "
          f"{len(problems)} failed {problems[:2]}")
    print("latency s: " + " ".join(f"{x:.1f}" for x in latencies))
    print(f"median {statistics.median(latencies):.1f} s, all done in {total:.1f} s "
          f"({total / args.clients:.2f} s per upload)")


if __name__ == "__main__":
    main()
