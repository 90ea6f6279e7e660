"""Training throughput (patches/s) on this machine (not a test).

Times full optimisation steps (forward, rate-distortion loss, backward, clipping, Adam and
the auxiliary step) on random crops, after warm-up, median of --steps; each case in its own
process.

    python benchmarks/train_speed.py --models tcm-s,tcm-cpu --batch 4 --patch 256 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = r"""
import json, statistics, time, torch
torch.set_num_threads({threads})
from tcmcodec.config import PRESETS
from tcmcodec.model import TCM
from tcmcodec.train.losses import rate_distortion_loss
from tcmcodec.train.loop import _split_parameters
try:  # the trainer's optimiser (fused Adam where available)
    from tcmcodec.train.loop import _adam
except ImportError:  # older versions of the package, for before/after comparisons
    _adam = lambda params, lr: torch.optim.Adam(params, lr)
torch.manual_seed(0)
cfg = PRESETS["{model}"]
model = TCM(cfg).train()
main, aux = _split_parameters(model)
opt, aux_opt = _adam(main, 1e-4), _adam(aux, 1e-3)
x = torch.rand({batch}, 3, {patch}, {patch})
lam = torch.full(({batch},), 0.013)
times = []
for i in range({steps} + 2):
    t = time.perf_counter()
    rate = torch.zeros({batch}) if cfg.variable_rate else None
    out = model(x, rate) if rate is not None else model(x)
    loss = rate_distortion_loss(out, x, lam)["loss"]
    opt.zero_grad(); aux_opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(main, 1.0); opt.step()
    a = model.aux_loss(); a.backward(); aux_opt.step()
    if i >= 2:
        times.append(time.perf_counter() - t)
step = statistics.median(times)
print(json.dumps(dict(step_s=step, patches_per_s={batch} / step)))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tcm-s,tcm-cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=256)
    p.add_argument("--threads", default="2")
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args(argv)
    print("| model | batch x patch | threads | s/step (median) | patches/s |")
    print("|---|---|---|---|---|")
    for model in args.models.split(","):
        for threads in args.threads.split(","):
            code = CASE.format(model=model, threads=threads, batch=args.batch, patch=args.patch, steps=args.steps)
            out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
            if out.returncode:
                print(f"| {model} | | {threads} | error: {out.stderr.strip().splitlines()[-1]} | |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {model} | {args.batch} x {args.patch} | {threads} | {r['step_s']:.2f} | {r['patches_per_s']:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
