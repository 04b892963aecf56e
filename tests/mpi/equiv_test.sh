#!/bin/sh
# equiv_test.sh equivalence|grad_accum DIST_TOOL SHARD DIR MPIRUN: 2 ranks x batch B (ranks seeded differently)
# against 1 process x batch 2B, 20 AdamW steps in f64: losses and parameters agree within 1e-6 relative. grad_accum
# uses 2 ranks x 2 micro-batches of B/2. A negative control (1 process x B) must differ, so the comparison can fail.
set -eu
mode=$1 tool=$2 shard=$3 dir=$4 mpirun=$5
run2() { "$mpirun" --oversubscribe --mca btl self,vader -np 2 "$tool" train "$shard" "$@"; }
mkdir -p "$dir"
rm -f "$dir"/*.loss "$dir"/*.params
"$tool" train "$shard" "$dir/one" 8 1 20 f64 0 0
case $mode in
equivalence)
    run2 "$dir/two" 4 1 20 f64 1000 0
    "$tool" compare "$dir/one" "$dir/two" 1e-6 same
    # Buckets only cut the buffer: 1000-byte buckets (many, a partial last one) give bit for bit the same run.
    run2 "$dir/two_small_buckets" 4 1 20 f64 1000 1000
    "$tool" compare "$dir/two" "$dir/two_small_buckets" 0 same
    # f32, printed for the record and not asserted: the key bias's rounding noise is near 1e-7 in f32, so elementwise
    # relative differences there are O(1) although the losses agree to about 1e-7.
    "$tool" train "$shard" "$dir/one32" 8 1 20 f32 0 0
    run2 "$dir/two32" 4 1 20 f32 1000 0
    "$tool" compare "$dir/one32" "$dir/two32" 1e-3 same || echo "(f32 comparison recorded, not asserted)"
    ;;
grad_accum)
    run2 "$dir/accum" 2 2 20 f64 1000 0
    "$tool" compare "$dir/one" "$dir/accum" 1e-6 same
    ;;
esac
"$tool" train "$shard" "$dir/half" 4 1 20 f64 0 0
"$tool" compare "$dir/one" "$dir/half" 1e-6 differ
