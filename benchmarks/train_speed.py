"""Training throughput (patches/s) on this machine (not a test).

Times full optimisation steps (forward, rate-distortion loss, backward, clipping, Adam and
the auxiliary step) on random crops, after warm-up, median of --steps; each case in its own
process. ``--device cuda`` times on a GPU (synchronised); ``--profile`` also prints the ops
that took the most host and device time in one step, and the number of aten calls per step
(views and nested calls included): on a GPU a small model's step is bound by the host.

    python benchmarks/train_speed.py --models tcm-s,tcm-cpu --batch 4 --patch 256 --threads 2
    python benchmarks/train_speed.py --models tcm-cpu,tcm-cpu-wide --batch 16 --device cuda --profile
    python benchmarks/train_speed.py --models tcm-cpu-wide --threads 1 --amp none,bf16

``--amp none,bf16,bf16-all`` times float32, bfloat16 in g_a and g_s (``tcm train --amp bf16``)
and bfloat16 in the entropy-parameter networks too (``--amp bf16-all``), one after the other,
each in its own process; ``bf16-entropy`` runs the entropy-parameter networks alone in bfloat16.
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
try:  # the trainer's optimisers (fused Adam where available)
    from tcmcodec.train.optimizers import adam as _adam, split_parameters as _split_parameters
except ImportError:  # older versions of the package, for before/after comparisons
    from tcmcodec.train.loop import _split_parameters
    _adam = lambda params, lr: torch.optim.Adam(params, lr)
torch.manual_seed(0)
cfg = PRESETS["{model}"]
device = torch.device("{device}")
if device.type == "cuda":
    torch.backends.cudnn.benchmark = True  # as tcm train does
model = TCM(cfg).to(device).train()
if "{amp}" in ("bf16", "bf16-all"):  # g_a and g_s (tcm train --amp bf16)
    model.transform_dtype = torch.bfloat16
if "{amp}" == "bf16-all":  # and the entropy-parameter networks (tcm train --amp bf16-all)
    model.entropy_dtype = torch.bfloat16
if "{amp}" == "bf16-entropy":  # the entropy-parameter networks alone (for the breakdown)
    model.entropy_dtype = torch.bfloat16
main, aux = _split_parameters(model)
opt, aux_opt = _adam(main, 1e-4), _adam(aux, 1e-3)
x = torch.rand({batch}, 3, {patch}, {patch}, device=device)
lam = torch.full(({batch},), 0.013, device=device)
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

def step():
    rate = torch.zeros({batch}, device=device) if cfg.variable_rate else None
    out = model(x, rate) if rate is not None else model(x)
    loss = rate_distortion_loss(out, x, lam)["loss"]
    opt.zero_grad(); aux_opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(main, 1.0); opt.step()
    a = model.aux_loss(); a.backward(); aux_opt.step()

times = []
for i in range({steps} + 2):
    sync(); t = time.perf_counter()
    step(); sync()
    if i >= 2:
        times.append(time.perf_counter() - t)
step_s = statistics.median(times)
if {profile}:
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step(); sync()
    events = prof.key_averages()
    print("aten calls per step:", sum(e.count for e in events if e.key.startswith("aten::")))
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(events.table(sort_by=key, row_limit=12))
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))
print(json.dumps(dict(step_s=step_s, patches_per_s={batch} / step_s)))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tcm-s,tcm-cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=256)
    p.add_argument("--threads", default="2")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", default="none", help="comma-separated: none, bf16, bf16-all, bf16-entropy (tcm train --amp)")
    p.add_argument("--profile", action="store_true", help="print the ops that took the most time")
    args = p.parse_args(argv)
    print("| model | batch x patch | threads | amp | s/step (median) | patches/s |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for threads in args.threads.split(","):
            for amp in args.amp.split(","):
                code = CASE.format(model=model, threads=threads, batch=args.batch, patch=args.patch,
                                   steps=args.steps, device=args.device, profile=args.profile, amp=amp)
                out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
                if out.returncode:
                    print(f"| {model} | | {threads} | {amp} | error: {out.stderr.strip().splitlines()[-1]} | |")
                    continue
                lines = out.stdout.strip().splitlines()
                if args.profile:
                    print("\n".join(lines[:-1]))
                r = json.loads(lines[-1])
                print(f"| {model} | {args.batch} x {args.patch} | {threads} | {amp} | {r['step_s']:.2f} | "
                      f"{r['patches_per_s']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
