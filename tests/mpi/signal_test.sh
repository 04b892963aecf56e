#!/bin/bash
# signal_test.sh kill|usr1 DIST_TOOL SHARD DIR MPIRUN DEADLINE_S: 2 ranks train "forever" under mpirun; once both
# have taken a few steps, rank 1 gets the signal.
#   kill: SIGKILL. mpirun must end the job, exit non-zero and say why within DEADLINE_S seconds.
#   usr1: SIGUSR1 (to rank 1 only). Every rank must stop after the same step and exit 0, within DEADLINE_S.
set -u
mode=$1 tool=$2 shard=$3 dir=$4 mpirun=$5 deadline=$6
rm -rf "$dir" && mkdir -p "$dir"
log=$dir/log
"$mpirun" --oversubscribe --mca btl self,vader -np 2 "$tool" run "$shard" "$dir" >"$log" 2>&1 &
job=$!
# Wait (at most 60 s) for both pid files and for rank 0 to report step 5.
for _ in $(seq 600); do
    [ -s "$dir/rank-0.pid" ] && [ -s "$dir/rank-1.pid" ] && grep -q "^step 5/" "$log" && break
    kill -0 $job 2>/dev/null || break
    sleep 0.1
done
if ! grep -q "^step 5/" "$log"; then
    echo "FAIL: training did not start"; cat "$log"; kill -KILL $job 2>/dev/null; exit 1
fi
victim=$(cat "$dir/rank-1.pid")
sig=KILL
[ "$mode" = usr1 ] && sig=USR1
start=$(date +%s.%N)
kill -$sig "$victim"
# Wait for mpirun, but never past the deadline (plus a margin, to report a hang as a failure instead of timing out).
rc=
for _ in $(seq $((deadline * 10 + 100))); do
    if ! kill -0 $job 2>/dev/null; then
        wait $job
        rc=$?
        break
    fi
    sleep 0.1
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
if [ -z "$rc" ]; then
    echo "FAIL: the job still runs ${elapsed}s after SIGKILL of rank 1 (hang)"; tail -n 20 "$log"
    kill -KILL $job; pkill -KILL -P $job; exit 1
fi
echo "mpirun exited $rc ${elapsed}s after SIG$sig to rank 1 (pid $victim)"
tail -n 15 "$log"
fail=0
if [ "$(echo "$elapsed > $deadline" | bc)" = 1 ]; then echo "FAIL: over the ${deadline}s deadline"; fail=1; fi
case $mode in
kill)
    [ "$rc" -ne 0 ] || { echo "FAIL: mpirun exited 0 although rank 1 was killed"; fail=1; }
    grep -Eq "rank 1 .*(exited on signal 9|Killed)" "$log" || { echo "FAIL: no message names rank 1's death"; fail=1; }
    ;;
usr1)
    [ "$rc" -eq 0 ] || { echo "FAIL: mpirun exited $rc"; fail=1; }
    s0=$(sed -n 's/^rank 0 stopped after step \([0-9]*\)$/\1/p' "$log")
    s1=$(sed -n 's/^rank 1 stopped after step \([0-9]*\)$/\1/p' "$log")
    echo "rank 0 stopped after step '$s0', rank 1 after step '$s1'"
    if [ -z "$s0" ] || [ "$s0" != "$s1" ] || [ "$s0" -lt 5 ]; then echo "FAIL: ranks did not stop together"; fail=1; fi
    grep -q "stopped by signal 10 after step $s0/" "$log" || { echo "FAIL: rank 0 did not report the stop"; fail=1; }
    ;;
esac
exit $fail
