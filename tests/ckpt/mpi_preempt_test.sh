#!/bin/bash
# Preemption under MPI: examples/pretrain on 2 ranks; SIGUSR1 to rank 1 only (not to mpirun) makes every rank stop
# after the same step, rank 0 save that step's checkpoint, and the job exit 0; the same command with --resume auto
# continues from that checkpoint on 2 ranks and finishes every step.
set -eu
prog=$1 text=$2 w=$3 mpirun=$4 tool=$5
command -v pgrep >/dev/null || { echo "pgrep (procps) is needed to find the ranks"; exit 1; }
rm -rf "$w" && mkdir -p "$w"
args=(--data "$text" --cache-dir "$w/data" --steps 300 --batch 2 --seq 32 --layers 1 --heads 2 --embd 32
      --eval-batches 0 --log-every 1 --sample-tokens 0 --dropout 0.1 --threads 1 --ckpt-dir "$w/ck"
      --ckpt-every 1000 --resume auto --metrics "$w/metrics.jsonl")
mpirun=("$mpirun" --oversubscribe --mca btl self,vader -np 2)
"${mpirun[@]}" "$prog" "${args[@]}" > "$w/run1.txt" 2>&1 &
job=$!
for _ in $(seq 1 600); do grep -q '"step": 3,' "$w/metrics.jsonl" 2>/dev/null && break; sleep 0.05; done
# mpirun starts the ranks as its children; signal rank 1, which saves nothing itself: rank 0 must learn of the stop
# at the step boundary and write the checkpoint.
victim=
for p in $(pgrep -P "$job"); do
    tr '\0' '\n' < "/proc/$p/environ" | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
done
test -n "$victim" || { echo "FAIL: no rank 1 under mpirun"; cat "$w/run1.txt"; kill -KILL $job; exit 1; }
kill -USR1 "$victim"
rc=0
wait "$job" || rc=$?
cat "$w/run1.txt"
test "$rc" -eq 0 || { echo "FAIL: mpirun exited $rc after SIGUSR1 to pid $victim"; exit 1; }
grep -q "stopped by signal 10 after step" "$w/run1.txt"
stopped=$(sed -n 's/.*stopped by signal 10 after step \([0-9]*\)\/300.*/\1/p' "$w/run1.txt")
test "$stopped" -ge 3 && test "$stopped" -lt 300
test "$(cat "$w/ck/latest")" = "$(printf 'step-%08d.h5' "$stopped")"
"$tool" info "$w/ck" | tee "$w/info.txt"
grep -q "^step $stopped, .*world_size 2," "$w/info.txt"
"${mpirun[@]}" "$prog" "${args[@]}" > "$w/run2.txt" 2>&1
grep -q "done: 300 steps" "$w/run2.txt"
# rank 0's metrics (appended to by the resumed run): every step from 1 to 300 once, in order, so the second run
# started right after the checkpoint's step
sed -n 's/^{"step": \([0-9]*\), "loss".*/\1/p' "$w/metrics.jsonl" > "$w/steps.txt"
seq 1 300 | cmp - "$w/steps.txt" || { echo "FAIL: the metrics do not hold steps 1..300 once each"; exit 1; }
test "$(cat "$w/ck/latest")" = step-00000300.h5
echo "SIGUSR1 to rank 1 (pid $victim) stopped both after step $stopped with a checkpoint; resumed and finished 300"
