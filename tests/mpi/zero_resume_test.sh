#!/bin/sh
# zero_resume_test.sh DIST_TOOL SHARD DIR MPIRUN: checkpoints under ZeRO-1 (labels mpi and ckpt), with dropout.
#  - exact resume on 2 ranks and on 3 (whose last shard is padded): 20 steps straight against 10 + save + a new
#    mpirun that resumes + 10, losses, gradient norms and final parameters bitwise identical;
#  - the file does not depend on the stage: without clipping (the one place where stage 1 rounds differently from 0),
#    stage 0 and stage 1 runs are bitwise equal on 2 ranks, and a stage-1 checkpoint resumed at stage 0, or a stage-0
#    one at stage 1, continues bitwise as the straight run does. A wrong gather or scatter of the moments breaks it.
set -eu
tool=$1 shard=$2 w=$3 mpirun=$4
run() { n=$1; shift; "$mpirun" --oversubscribe --mca btl self,vader -np "$n" "$tool" ckpt "$shard" "$@"; }
rm -rf "$w" && mkdir -p "$w"
same() { # A B: the same losses (and gradient norms) and parameters, bit for bit
    cmp "$w/$1.loss" "$w/$2.loss" && cmp "$w/$1.params" "$w/$2.params" || { echo "FAIL: $1 and $2 differ"; exit 1; }
}
# The same losses and parameters: across stages the reported norm may differ in its last bit (stage 1 adds the
# shards' sums of squares; without clipping it does not enter the update).
same_but_norm() {
    cut -d' ' -f1,2 "$w/$1.loss" > "$w/$1.loss2" && cut -d' ' -f1,2 "$w/$2.loss" > "$w/$2.loss2"
    cmp "$w/$1.loss2" "$w/$2.loss2" && cmp "$w/$1.params" "$w/$2.params" || { echo "FAIL: $1 and $2 differ"; exit 1; }
}

for n in 2 3; do
    run $n 20 20 - - "$w/straight$n" 1 1
    run $n 20 10 "$w/ck$n" - "$w/split$n" 1 1 | tee "$w/save$n.txt"
    grep -q "saved step 10: world_size $n, zero_stage 1," "$w/save$n.txt"
    cp "$w/split$n.params" "$w/half$n.params"
    run $n 20 10 - "$w/ck$n" "$w/split$n" 1 1
    test "$(wc -l < "$w/split$n.loss")" -eq 20
    same straight$n split$n
    if cmp -s "$w/half$n.params" "$w/split$n.params"; then echo "FAIL: nothing changed after resuming"; exit 1; fi
    echo "ZeRO-1 exact resume on $n ranks: 20 losses and $(wc -c < "$w/split$n.params") parameter bytes identical"
done

# Across stages (no clipping): stage 0 = stage 1, and a checkpoint of either stage resumes at the other.
run 2 20 20 - - "$w/s0" 0 0
run 2 20 20 - - "$w/s1" 1 0
same_but_norm s0 s1
run 2 20 10 "$w/ck_s1" - "$w/s1_to_s0" 1 0 | grep -q "zero_stage 1,"
run 2 20 10 - "$w/ck_s1" "$w/s1_to_s0" 0 0
same_but_norm s0 s1_to_s0
run 2 20 10 "$w/ck_s0" - "$w/s0_to_s1" 0 0 | grep -q "zero_stage 0,"
run 2 20 10 - "$w/ck_s0" "$w/s0_to_s1" 1 0
same_but_norm s1 s0_to_s1
echo "a stage-1 checkpoint resumes at stage 0 and a stage-0 one at stage 1, bitwise"
