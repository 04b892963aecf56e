#!/bin/sh
# Exact resume: 20 steps straight against 10 + save + a new process that resumes + 10, with dropout on.
# Losses, gradient norms (hex floats) and the final parameters (raw bytes) must be bitwise identical.
set -eu
tool=$1 text=$2 w=$3
rm -rf "$w" && mkdir -p "$w"
"$tool" tokenize "$text" "$w/data.bin"
"$tool" train "$w/data.bin" 20 20 - - "$w/straight.loss" "$w/straight.params"
"$tool" train "$w/data.bin" 20 10 "$w/ck" - "$w/split.loss" "$w/half.params"
test "$(cat "$w/ck/latest")" = step-00000010.h5
"$tool" train "$w/data.bin" 20 10 - "$w/ck" "$w/split.loss" "$w/split.params"
test "$(wc -l < "$w/straight.loss")" -eq 20
cmp "$w/straight.loss" "$w/split.loss"
cmp "$w/straight.params" "$w/split.params"
if cmp -s "$w/half.params" "$w/split.params"; then echo "parameters did not change after resuming"; exit 1; fi
echo "exact resume: 20 losses and $(wc -c < "$w/split.params") parameter bytes identical"
