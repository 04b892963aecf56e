#!/bin/sh
# Checkpoints under MPI (2 ranks): exact resume with dropout on (20 steps straight against 10 + save + a new mpirun
# that resumes + 10: losses and final parameters bitwise identical); a resume with another world size is a clear
# error in both directions; a failed save or resume gives every rank the same status and leaves latest as it was.
set -eu
tool=$1 text=$2 w=$3 mpirun=$4
run2() { "$mpirun" --oversubscribe --mca btl self,vader -np 2 "$tool" "$@"; }
rm -rf "$w" && mkdir -p "$w"
"$tool" tokenize "$text" "$w/data.bin"
run2 train "$w/data.bin" 20 20 - - "$w/straight.loss" "$w/straight.params"
run2 train "$w/data.bin" 20 10 "$w/ck" - "$w/split.loss" "$w/half.params"
test "$(cat "$w/ck/latest")" = step-00000010.h5
"$tool" info "$w/ck" | tee "$w/info.txt"
grep -q "world_size 2," "$w/info.txt"
run2 train "$w/data.bin" 20 10 - "$w/ck" "$w/split.loss" "$w/split.params"
test "$(wc -l < "$w/straight.loss")" -eq 20
cmp "$w/straight.loss" "$w/split.loss"
cmp "$w/straight.params" "$w/split.params"
if cmp -s "$w/half.params" "$w/split.params"; then echo "parameters did not change after resuming"; exit 1; fi
echo "exact resume on 2 ranks: 20 losses and $(wc -c < "$w/split.params") parameter bytes identical"

# Another world size: STRICT fails naming both sizes (on every rank), PARAMS_ONLY loads.
"$tool" expect "$w/data.bin" "$w/ck" LT_ERR_UNSUPPORTED "world size 2 but this run has world size 1"
"$tool" train "$w/data.bin" 20 10 "$w/ck1" - "$w/one.loss" "$w/one.params"
run2 expect "$w/data.bin" "$w/ck1" LT_ERR_UNSUPPORTED "world size 1 but this run has world size 2"

run2 mpifail "$w/data.bin" "$w/fail"
