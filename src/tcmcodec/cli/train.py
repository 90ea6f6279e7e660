"""``tcm train``: train a TCM model (CPU, CUDA, or several processes with torchrun)."""

from __future__ import annotations

import argparse

HELP = "train a model on a folder of images (resumable; torchrun for several processes/GPUs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder of training images (searched recursively)")
    p.add_argument("--val", help="folder of validation images")
    p.add_argument("--val-split", type=int, default=0, metavar="N",
                   help="hold out N images of --data for validation (deterministic)")
    p.add_argument("--model", default="tcm-s", help="preset: tcm-s, tcm-m, tcm-l, tcm-cpu, tcm-tiny, ...")
    p.add_argument("--lambda", dest="lmbda", type=float, default=None,
                   help="rate-distortion trade-off (fixed-rate presets; default 0.013)")
    p.add_argument("--metric", choices=["mse", "ms-ssim"], default="mse")
    p.add_argument("--patch", type=int, default=256, help="random crop size (multiple of 64)")
    p.add_argument("--batch-size", type=int, default=8)
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=int, help="total optimisation steps")
    length.add_argument("--epochs", type=float, help="total passes over the training images")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 1e-4; with --resume: keep the run's unless given)")
    p.add_argument("--aux-lr", type=float, default=1e-3)
    p.add_argument("--milestones", type=int, nargs="*", default=[], metavar="STEP",
                   help="steps at which the learning rate is multiplied by --gamma")
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=0, metavar="N",
                   help="raise the learning rate linearly over the run's first N steps (useful "
                        "after --init, e.g. from a widened model; default 0: off)")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data-loading processes")
    p.add_argument("--val-every", type=int, default=500, metavar="STEPS")
    p.add_argument("--val-max-side", type=int, default=512,
                   help="validation images are centre-cropped to at most this size")
    p.add_argument("--val-raw", action=argparse.BooleanOptionalAction, default=True,
                   help="with a moving average, also validate the raw weights (logged as raw_*; "
                        "--no-val-raw halves the time validation takes)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--out", required=True, help="output folder (checkpoints, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint-latest.pth.tar")
    p.add_argument("--init", metavar="CKPT", help="start from these weights (fine-tuning)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.add_argument("--amp", choices=["bf16"],
                   help="bfloat16 compute in the inner layers of g_a and g_s (CUDA, or a CPU with "
                        "AVX512-BF16/AMX: 1.4-1.7x faster steps measured on a Xeon with AMX); validation "
                        "stays float32")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--lambdas", type=_lambda_list, default=None, metavar="L1,L2,...",
                   help="variable-rate presets: train for these rate-distortion lambdas (ascending; one "
                        "rate level each) instead of the preset's; with --init, trained gain vectors are "
                        "resampled onto them; a resumed run keeps its own")
    p.add_argument("--max-level", type=float, default=None,
                   help="variable-rate models: train only rate levels up to this one")
    p.add_argument("--balance-levels", action="store_true",
                   help="variable-rate models: weight each rate level's loss by the inverse of its "
                        "running mean, so every level pulls alike (by default the highest lambdas "
                        "dominate the shared transforms)")
    p.add_argument("--ema-decay", type=float, default=None, metavar="D",
                   help="decay of the weights' moving average, which is validated and exported "
                        "(default 0.999; 0: off)")
    p.add_argument("--max-minutes", type=float, default=None, metavar="MIN",
                   help="stop after this much wall-clock time (checkpoint and validate first; "
                        "--resume continues)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _lambda_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.0025,0.013,0.05, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    from tcmcodec.config import get_preset
    from tcmcodec.train.loop import train
    from tcmcodec.train.settings import TrainingError, TrainSettings

    try:
        config = get_preset(args.model)
    except KeyError as exc:
        raise TrainingError(str(exc.args[0])) from None
    lmbda = args.lmbda
    if lmbda is None and not config.variable_rate:
        lmbda = 0.013
    if lmbda is not None and config.variable_rate:
        raise TrainingError(f"{args.model} is variable-rate (lambdas {list(config.rate_lambdas)}): drop --lambda")
    settings = TrainSettings(
        data=args.data, out=args.out, model=args.model, lmbda=lmbda, metric=args.metric,
        patch=args.patch, batch_size=args.batch_size, steps=args.steps, epochs=args.epochs,
        lr=args.lr, aux_lr=args.aux_lr, milestones=args.milestones, gamma=args.gamma,
        warmup_steps=args.warmup_steps,
        clip=args.clip, seed=args.seed, workers=args.workers, val=args.val,
        val_split=args.val_split, val_every=args.val_every, val_max_side=args.val_max_side,
        val_raw=args.val_raw,
        checkpoint_minutes=args.checkpoint_minutes, resume=args.resume, init=args.init,
        device=args.device, amp=args.amp, threads=args.threads, progress=not args.no_progress,
        max_level=args.max_level, max_minutes=args.max_minutes, balance_levels=args.balance_levels,
        rate_lambdas=args.lambdas,
    )
    if args.ema_decay is not None:
        settings.ema_decay = args.ema_decay
    metrics = train(settings)
    if metrics:
        print(f"done: step {int(metrics['step'])} loss {metrics['loss']:.4f} bpp {metrics['bpp']:.4f} "
              f"PSNR {metrics['psnr']:.2f} dB, {metrics['patches_per_s']:.2f} patches/s")
    return 0
