#!/usr/bin/env bash
# Train on a lent GPU machine for a fixed time and bring the exported weights back.
#
# Run through the device tool from the repository root, carrying the crops and wheels made
# here (docs/training.md, "Training on a lent GPU"):
#   run(command="bash scripts/device_train.sh", carry=[".train-crops", ".whl"], timeout_s=600)
# Settings (environment): MODEL (tcm-cpu-wide, the bundled preset), INIT (the bundled weights; "none": from
# scratch), WIDEN (0; 1: INIT is a narrow model, widened into MODEL first by `tcm widen`), MINUTES (7) at LR (3e-4) after a
# linear warm-up over WARMUP steps (0), then FINE_MINUTES (0) at FINE_LR (LR/10), PATCH (256),
# BATCH (16), WORKERS (8), EMA (0.999: decay of the exported moving average), TAG (gpu; runs with different TAGs can share the GPU: a run of
# tcm-cpu keeps it less than half busy). Results land in $OUT: TAG-train.log,
# TAG-metrics.jsonl and MODEL-TAG.pt (fp16 inference weights of the moving average), cut
# into MODEL-TAG.pt.part-aa, -ab ... when over the 15 MiB a returned file may have
# (`cat MODEL-TAG.pt.part-* > MODEL-TAG.pt` here). BENCH_SECONDS (0) > 0 then times a few steps with
# and without --amp bf16 and bf16-all (benchmarks/train_speed.py) into TAG-bench.txt. BALANCE (1; 0: off) trains
# with --balance-levels (every rate level's loss weighted alike; docs/training.md).
# SEED (0) seeds the crop order and rate levels: runs with different TAGs and SEEDs from one INIT
# are partners for `tcm export A B OUT` (the mean of their weights).
set -euo pipefail
MODEL=${MODEL:-tcm-cpu-wide}
INIT=${INIT:-src/tcmcodec/weights/tcm-cpu-mse.pt}
MINUTES=${MINUTES:-7}
LR=${LR:-3e-4}
WARMUP=${WARMUP:-0}
FINE_MINUTES=${FINE_MINUTES:-0}
FINE_LR=${FINE_LR:-$(python3 -c "print($LR / 10)")}
PATCH=${PATCH:-256}
BATCH=${BATCH:-16}
WORKERS=${WORKERS:-8}
EMA=${EMA:-0.999}
BENCH_SECONDS=${BENCH_SECONDS:-0}
BALANCE=${BALANCE:-1}
TAG=${TAG:-gpu}
SEED=${SEED:-0}
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"

if ! python3 -c "import constriction, pytorch_msssim" 2>/dev/null; then  # not installed there: the wheels travel in .whl
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "/tmp/site-$TAG" .whl/*.whl
  export PYTHONPATH=/tmp/site-$TAG
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
nvidia-smi -L || true
python3 -c "import torch, constriction; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

RUN=/tmp/device-run-$TAG
LOG=$OUT/$TAG-train.log
if [ "${WIDEN:-0}" = 1 ]; then
  python3 -m tcmcodec widen "$INIT" "/tmp/widened-$TAG.pt" --model "$MODEL"
  INIT=/tmp/widened-$TAG.pt
fi
INIT_ARGS=()
[ "$INIT" = none ] || INIT_ARGS=(--init "$INIT")
BALANCE_ARGS=()
[ "$BALANCE" = 1 ] && BALANCE_ARGS=(--balance-levels)
python3 -m tcmcodec train --data .train-crops --model "$MODEL" "${INIT_ARGS[@]}" --seed "$SEED" --lr "$LR" --warmup-steps "$WARMUP" --ema-decay "$EMA" "${BALANCE_ARGS[@]}" \
  --patch "$PATCH" --batch-size "$BATCH" --steps 1000000 --max-minutes "$MINUTES" \
  --workers "$WORKERS" --val-every 0 --checkpoint-minutes 2 --out "$RUN" --no-progress \
  2>&1 | tee "$LOG"
if python3 -c "import sys; sys.exit(not float('$FINE_MINUTES') > 0)"; then
  python3 -m tcmcodec train --data .train-crops --model "$MODEL" --seed "$SEED" --lr "$FINE_LR" --ema-decay "$EMA" "${BALANCE_ARGS[@]}" --resume \
    --patch "$PATCH" --batch-size "$BATCH" --steps 1000000 --max-minutes "$FINE_MINUTES" \
    --workers "$WORKERS" --val-every 0 --checkpoint-minutes 2 --out "$RUN" --no-progress \
    2>&1 | tee -a "$LOG"
fi
cp "$RUN/metrics.jsonl" "$OUT/$TAG-metrics.jsonl" || true  # none before step 10
WEIGHTS=$OUT/$MODEL-$TAG.pt
python3 -m tcmcodec export "$RUN/checkpoint-latest.pth.tar" "$WEIGHTS" --fp16
if [ "$(stat -c %s "$WEIGHTS")" -gt $((15 * 1024 * 1024)) ]; then
  split -b 15M "$WEIGHTS" "$WEIGHTS.part-" && rm "$WEIGHTS"
fi
if [ "$BENCH_SECONDS" -gt 0 ]; then  # after the weights are safe: a failure here costs nothing
  timeout "$BENCH_SECONDS" python3 benchmarks/train_speed.py --models "$MODEL" --device cuda \
    --batch "$BATCH" --patch "$PATCH" --amp none,bf16,bf16-all --steps 10 > "$OUT/$TAG-bench.txt" 2>&1 || true
fi
ls -la "$OUT"
