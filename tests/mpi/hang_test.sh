#!/bin/bash
# hang_test.sh return|abort|stuck|pretrain TOOL SHARD_OR_TEXT DIR MPIRUN TIMEOUT_S: the library's deadline. A rank that
# hangs without dying (here: stopped with SIGSTOP, so it neither answers nor exits) must not hang the others; the
# job must end within TIMEOUT_S plus a margin for mpirun's teardown (SLACK_S), not before TIMEOUT_S, with a message.
#   return:   the last of 3 ranks stops itself before a step; the others get LT_ERR_BACKEND naming the call, the time
#             and their rank after TIMEOUT_S (dist_tool checks it and exits 3); mpirun then ends the job.
#   abort:    the same with abort_on_timeout: the library ends the job itself (MPI_Abort, exit code 124).
#   stuck:    2 ranks enter a broadcast with different roots (a bulk transfer that never completes, after every rank
#             entered it): each rank's watchdog ends it (exit code 124).
#   pretrain: examples/pretrain on 2 ranks (--dist-timeout); rank 1 is stopped from outside (SIGSTOP) at a random
#             point of its training: the job ends with exit code 124 and a message.
set -u
mode=$1 tool=$2 data=$3 dir=$4 mpirun=$5 timeout=$6
SLACK_S=${SLACK_S:-15}
rm -rf "$dir" && mkdir -p "$dir"
log=$dir/log
mpi=("$mpirun" --oversubscribe --mca btl self,vader)
case $mode in
return | abort) "${mpi[@]}" -np 3 "$tool" hang "$data" "$dir" "$timeout" "$mode" >"$log" 2>&1 & ;;
stuck) "${mpi[@]}" -np 2 "$tool" stuck "$dir" "$timeout" >"$log" 2>&1 & ;;
pretrain)
    "${mpi[@]}" -np 2 "$tool" --data "$data" --cache-dir "$dir/cache" --steps 100000 --batch 2 --seq 32 --layers 1 \
        --heads 2 --embd 32 --eval-every 0 --log-every 1 --threads 1 --dist-timeout "$timeout" >"$log" 2>&1 &
    ;;
*) echo "unknown mode $mode"; exit 2 ;;
esac
job=$!
# The rank of mpirun's children whose environment says OMPI_COMM_WORLD_RANK=$1.
rank_pid() {
    for p in $(pgrep -P $job); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$p"; return; }
    done
}
# When the hang started: the tool's stamp file (stopped, entered), or now for pretrain once it has trained a bit.
stamp=$dir/stopped
[ "$mode" = stuck ] && stamp=$dir/entered
victim=
for _ in $(seq 600); do
    kill -0 $job 2>/dev/null || break
    if [ "$mode" = pretrain ]; then
        if grep -q "step 5/" "$log"; then # (a live status line under mpirun, whose pty is a terminal)
            victim=$(rank_pid 1)
            [ -n "$victim" ] && { date +%s.%N >"$dir/stopped"; kill -STOP "$victim"; break; }
        fi
    elif [ -s "$stamp" ]; then
        break
    fi
    sleep 0.1
done
if [ ! -s "$stamp" ]; then
    echo "FAIL: the hang never started"; cat "$log"; kill -KILL $job 2>/dev/null; exit 1
fi
start=$(cat "$stamp")
rc=
for _ in $(seq $(((timeout + SLACK_S) * 10 + 300))); do
    if ! kill -0 $job 2>/dev/null; then
        wait $job
        rc=$?
        break
    fi
    sleep 0.1
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
if [ -z "$rc" ]; then
    echo "FAIL: the job still runs ${elapsed}s after the hang began (deadline ${timeout}s)"; tail -n 30 "$log"
    kill -KILL $job; exit 1
fi
[ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null # mpirun should have ended it; never leave a stopped process
echo "mode $mode: mpirun exited $rc ${elapsed}s after the hang began (deadline ${timeout}s, slack ${SLACK_S}s)"
tr "\r" "\n" <"$log" | grep -v "step [0-9]*/" | tail -n 25
fail=0
if [ "$(echo "$elapsed > $timeout + $SLACK_S" | bc)" = 1 ]; then echo "FAIL: over the deadline plus slack"; fail=1; fi
if [ "$(echo "$elapsed < $timeout" | bc)" = 1 ]; then echo "FAIL: ended before the deadline"; fail=1; fi
[ "$rc" -ne 0 ] || { echo "FAIL: mpirun exited 0"; fail=1; }
want="timed out after [0-9.]+ s waiting for the other ranks in MPI_"
case $mode in
return)
    n=$(grep -c "^rank [01]: ok: LT_ERR_BACKEND naming the call" "$log")
    [ "$n" -eq 2 ] || { echo "FAIL: not both waiting ranks got the timeout (rank 0 and 1: $n)"; fail=1; }
    ! grep -q "FAILED" "$log" || { echo "FAIL: a check failed"; fail=1; }
    grep -Eq "rank [01] of 3 $want" "$log" || { echo "FAIL: no message"; fail=1; }
    ;;
abort)
    [ "$rc" -eq 124 ] || { echo "FAIL: exit code $rc, expected 124"; fail=1; }
    grep -Eq "^libtrain: lt_dist_[a-z_]+: rank [01] of 3 $want.*ending the job \(MPI_Abort" "$log" ||
        { echo "FAIL: no message"; fail=1; }
    ! grep -q "library returned" "$log" || { echo "FAIL: the library returned"; fail=1; }
    ;;
stuck)
    [ "$rc" -eq 124 ] || { echo "FAIL: exit code $rc, expected 124"; fail=1; }
    grep -Eq "^libtrain: lt_dist_broadcast \(MPI_Bcast\): rank [01] of 2 timed out after [0-9.]+ s in the transfer" \
        "$log" || { echo "FAIL: no message from the watchdog"; fail=1; }
    ! grep -q "broadcast returned" "$log" || { echo "FAIL: the broadcast returned"; fail=1; }
    ;;
pretrain)
    [ "$rc" -eq 124 ] || { echo "FAIL: exit code $rc, expected 124"; fail=1; }
    grep -Eq "^libtrain: .*rank 0 of 2 (timed out after [0-9.]+ s waiting for the other ranks in MPI_|timed out after [0-9.]+ s in the transfer)" \
        "$log" || { echo "FAIL: no message naming rank 0"; fail=1; }
    ;;
esac
exit $fail
