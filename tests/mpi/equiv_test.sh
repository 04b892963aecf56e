#!/bin/sh
# equiv_test.sh equivalence|grad_accum|zero DIST_TOOL SHARD DIR MPIRUN: 2 ranks x batch B (ranks seeded differently)
# against 1 process x batch 2B, 20 AdamW steps in f64: losses and parameters agree within 1e-6 relative. grad_accum
# uses 2 ranks x 2 micro-batches of B/2. zero: ZeRO-1 on 3 ranks (the tiny model's 21472 parameters are 1 mod 3, so
# the last shard is padded) against plain data parallelism and against 1 process x 3B, with clipping active and
# with gradient accumulation. A negative control (1 process x B) must differ, so the comparison can fail.
set -eu
mode=$1 tool=$2 shard=$3 dir=$4 mpirun=$5
run() { n=$1; shift; "$mpirun" --oversubscribe --mca btl self,vader -np "$n" "$tool" train "$shard" "$@"; }
run2() { run 2 "$@"; }
mkdir -p "$dir"
rm -f "$dir"/*.loss "$dir"/*.params
big=8 small=4
[ "$mode" = zero ] && big=6 small=2
"$tool" train "$shard" "$dir/one" $big 1 20 f64 0 0
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
zero)
    # Each ZeRO-1 run also checks on every rank that AdamW's m and v hold exactly its shard (about a third).
    run 3 "$dir/plain3" 2 1 20 f64 1000 0 0 | tee "$dir/plain3.out"
    run 3 "$dir/zero3" 2 1 20 f64 1000 0 1 | tee "$dir/zero3.out"
    grep -q "21472 parameters (1 mod world)" "$dir/zero3.out" || { echo "FAIL: the parameter count divides by 3"; exit 1; }
    grep -q " [1-9][0-9]* steps clipped" "$dir/zero3.out" || { echo "FAIL: no step was clipped"; exit 1; }
    "$tool" compare "$dir/plain3" "$dir/zero3" 1e-6 same
    "$tool" compare "$dir/one" "$dir/zero3" 1e-6 same
    # 3 ranks x 2 micro-batches of 1
    run 3 "$dir/zero3_accum" 1 2 20 f64 1000 0 1 | tee "$dir/zero3_accum.out"
    grep -q " [1-9][0-9]* steps clipped" "$dir/zero3_accum.out" || { echo "FAIL: no step was clipped"; exit 1; }
    "$tool" compare "$dir/one" "$dir/zero3_accum" 1e-6 same
    # 1000-byte rounds (many, a partial last one) only cut the buffer: bit for bit the same run.
    run 3 "$dir/zero3_small" 2 1 20 f64 1000 1000 1
    "$tool" compare "$dir/zero3" "$dir/zero3_small" 0 same
    # Bitwise where the arithmetic is the same: on 2 ranks a sum of two is the same in any reduction order, and
    # without clipping the norm (summed per shard under ZeRO-1) does not enter the update.
    run2 "$dir/plain2_noclip" 3 1 20 f64 1000 0 0 0
    run2 "$dir/zero2_noclip" 3 1 20 f64 1000 0 1 0
    "$tool" compare "$dir/plain2_noclip" "$dir/zero2_noclip" 0 same
    ;;
esac
"$tool" train "$shard" "$dir/half" $small 1 20 f64 0 0
"$tool" compare "$dir/one" "$dir/half" 1e-6 differ
