#!/bin/bash
# Preemption: train_gpt gets SIGUSR1 after a few steps, saves at the next step boundary and exits 0 early;
# the same command with --resume auto continues from that checkpoint and finishes every step.
set -eu
prog=$1 text=$2 w=$3
rm -rf "$w" && mkdir -p "$w"
args=(--data "$text" --cache-dir "$w/data" --steps 400 --batch 2 --seq 32 --layers 1 --heads 2 --embd 32
      --eval-batches 0 --log-every 1 --sample-tokens 0 --dropout 0.1 --ckpt-dir "$w/ck" --ckpt-every 1000
      --resume auto --metrics "$w/metrics.jsonl")
"$prog" "${args[@]}" > "$w/run1.txt" &
pid=$!
for _ in $(seq 1 600); do grep -q '"step": 3,' "$w/metrics.jsonl" 2>/dev/null && break; sleep 0.05; done
kill -USR1 "$pid"
wait "$pid"
grep -q "stopped by signal" "$w/run1.txt"
stopped=$(sed -n 's/.*after step \([0-9]*\)\/400.*/\1/p' "$w/run1.txt")
test "$(cat "$w/ck/latest")" = "$(printf 'step-%08d.h5' "$stopped")"
"$prog" "${args[@]}" > "$w/run2.txt"
grep -q "resumed at step $stopped" "$w/run2.txt"
grep -q "done: 400 steps" "$w/run2.txt" || grep -q "step 400/400" "$w/run2.txt"
test "$(cat "$w/ck/latest")" = step-00000400.h5
echo "stopped at step $stopped by SIGUSR1, resumed and finished 400 steps"
