#!/usr/bin/env bash
# The real-GPU check (docs/gpu.md): on a machine with an NVIDIA GPU and nothing to download, in under 8 minutes,
#   gpu        nvidia-smi: the GPU, its driver and CUDA version
#   configure  cmake build-gpu with -DLT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native (90 when native fails)
#   build      everything (library, tests, examples, bench/) with all cores
#   bench      bench/train_step on the GPU: GPT-2 124M, B 16 x T 1024, bf16 autocast (--dtype auto on a GPU), then
#              f32 with LIBTRAIN_TF32=1 for comparison; prints tokens/s, ms/step, MFU (llm.c's 6N + 6LCT
#              FLOP/token against 989 TFLOP/s) and peak device memory
#   nccl       GPU data parallelism on real NCCL: tests/cuda/test_gpu_nccl under mpirun with one rank (init, the
#              bucketed all-reduce, the broadcast, a GPU trainer, teardown), then one rank per GPU when there are
#              several (at most 8); skipped when mpirun is missing or the build has no NCCL or MPI
#   ctest      the whole CTest suite: label gpu runs tests/cuda on the GPU, label cuda the same tests on the emulator
#   sanitizer  compute-sanitizer memcheck and racecheck on a few build-gpu/tests/cuda/test_gpu_* programs (when
#              compute-sanitizer exists)
# Every stage runs under `timeout` within one overall budget, and every stage runs even when an earlier one failed
# (a stage whose input is missing fails fast). All output goes to one log; the terminal gets each stage's key lines
# and, at the end, a table of stage -> ok/FAILED/skipped and time, then the log's path.
# Exit status: 0 every stage passed; 1 a stage failed (or ran out of time); 2 no NVIDIA GPU here (nothing was
# built or run; the log says why).
# Environment: LT_GPU_BUILD_DIR (default build-gpu), LT_GPU_CHECK_LOG (default <build dir>/gpu-check.log),
# LT_GPU_CHECK_BUDGET (seconds for all stages, default 460), LT_GPU_CMAKE_ARGS (extra configure arguments),
# LT_GPU_BENCH_ARGS (replace the bench's arguments), LT_GPU_CHECK_STAGES (the stages to run after gpu, default
# "configure build bench nccl ctest sanitizer": e.g. "bench" to rerun the benchmark on an existing build).
# shellcheck disable=SC2317 # the stage_* functions are called indirectly, as "stage_$name"
set -uo pipefail
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
root=$(cd "$(dirname "$self")/.." && pwd)
cd "$root" || exit 1
build=${LT_GPU_BUILD_DIR:-build-gpu}
[[ $build = /* ]] || build=$root/$build
jobs=$(nproc)
export PATH=$PATH:/usr/local/cuda/bin
bench_args=(--device cuda --config gpt2-124M --batch 16 --seq 1024 --dtype auto --steps 10 --warmup 3)
if [ -n "${LT_GPU_BENCH_ARGS:-}" ]; then read -r -a bench_args <<<"$LT_GPU_BENCH_ARGS"; fi

# ---- stages: each is a function run in a child (`$0 __stage NAME`) under timeout; stdout+stderr go to the log ----

stage_gpu() {
    command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver on this machine"; return 2; }
    nvidia-smi || return 2
    nvidia-smi -L | grep -q '^GPU ' || { echo "nvidia-smi lists no GPU"; return 2; }
    nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap --format=csv || true
    command -v nvcc >/dev/null && nvcc --version | tail -n 2
    return 0
}

configure_with() {
    local args=(-S "$root" -B "$build" -DLT_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$1")
    local extra=()
    read -r -a extra <<<"${LT_GPU_CMAKE_ARGS:-}"
    command -v ninja >/dev/null && [ ! -f "$build/CMakeCache.txt" ] && args+=(-G Ninja)
    cmake "${args[@]}" "${extra[@]}"
}

stage_configure() {
    command -v cmake >/dev/null || { echo "cmake not found"; return 1; }
    command -v nvcc >/dev/null || { echo "nvcc not found (looked on PATH and in /usr/local/cuda/bin)"; return 1; }
    if configure_with native; then
        grep -qE '^LT_CUDA:[A-Z]+=ON$' "$build/CMakeCache.txt" || { echo "configured, but LT_CUDA is not ON"; return 1; }
        return 0
    fi
    echo "--- CMAKE_CUDA_ARCHITECTURES=native failed: configuring again from scratch for 90 (H100/H200)"
    rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
    configure_with 90 || return 1
    grep -qE '^LT_CUDA:[A-Z]+=ON$' "$build/CMakeCache.txt" || { echo "configured, but LT_CUDA is not ON"; return 1; }
}

stage_build() {
    [ -f "$build/CMakeCache.txt" ] || { echo "not configured"; return 1; }
    cmake --build "$build" --parallel "$jobs"
}

# Twice: the benchmark's arguments (bf16 autocast by default), then the same step in f32 with LIBTRAIN_TF32=1
# (cuda/gemm.cu: f32 GEMMs on TF32 tensor cores) for comparison. Each run prints tokens/s, ms/step, MFU and peak
# device memory.
stage_bench() {
    local exe=$build/bench/train_step rc=0
    [ -x "$exe" ] || { echo "$exe was not built"; return 1; }
    echo "+ $exe ${bench_args[*]}"
    env -u LIBTRAIN_TF32 "$exe" "${bench_args[@]}" || rc=1
    echo "+ LIBTRAIN_TF32=1 $exe ${bench_args[*]} --dtype f32"
    LIBTRAIN_TF32=1 "$exe" "${bench_args[@]}" --dtype f32 || rc=1
    return "$rc"
}

# GPU data parallelism (src/dist/nccl.c) on the real NCCL: one rank first (a machine with one GPU cannot host two:
# NCCL refuses two ranks on one GPU), then one rank per GPU. test_gpu_nccl's `collectives` mode: lt_dist_init_nccl and
# its checks, ncclBroadcast of a model from rank 0, the bucketed ncclAllReduce (sum and mean, f32 and f64) against
# known values, the parameters check, two steps of a GPU trainer, and lt_dist_free's teardown.
stage_nccl() {
    local exe=$build/tests/cuda/test_gpu_nccl cache=$build/CMakeCache.txt
    [ -f "$cache" ] || { echo "not configured"; return 1; }
    command -v mpirun >/dev/null || { echo "mpirun not found (install openmpi-bin, libopenmpi-dev): skipped"; return 3; }
    grep -qE '^LT_MPI:[A-Z]+=ON$' "$cache" || { echo "LT_MPI is not ON in $build (no MPI found): skipped"; return 3; }
    grep -qE '^LT_NCCL:[A-Z]+=ON$' "$cache" || { echo "LT_NCCL is not ON in $build (no NCCL found): skipped"; return 3; }
    [ -x "$exe" ] || { echo "$exe was not built"; return 1; }
    local gpus rc=0 np dir=$build/nccl-check
    gpus=$(nvidia-smi -L | grep -c '^GPU ')
    [ "$gpus" -le 8 ] || gpus=8
    mkdir -p "$dir"
    for np in 1 $([ "$gpus" -gt 1 ] && echo "$gpus"); do
        echo "+ mpirun -np $np $exe collectives $dir"
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 LIBTRAIN_POISON_ALLOC=1 \
            timeout -k 5 40 mpirun --oversubscribe --bind-to none -np "$np" "$exe" collectives "$dir" || rc=1
    done
    return "$rc"
}

stage_ctest() {
    [ -f "$build/CTestTestfile.cmake" ] || { echo "not configured"; return 1; }
    local out rc
    out=$(mktemp)
    # MPI tests start mpirun, which as root needs this pair (the tests that need it set it too).
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        ctest --test-dir "$build" --output-on-failure --parallel "$jobs" --timeout 150 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    # On a machine with a GPU, a gpu test that skips (exit 77: no device) is a failure of this check.
    if grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: test_gpu_[a-z0-9_]+ .*Skipped' "$out"; then
        echo "--- the gpu tests above were skipped although this machine has a GPU"
        rc=1
    fi
    local n_gpu
    n_gpu=$(grep -cE 'Test +#[0-9]+: test_gpu_[a-z0-9_]+ .* Passed' "$out")
    echo "--- gpu-labelled tests passed on the device: $n_gpu"
    [ "$n_gpu" -gt 0 ] || { echo "--- no gpu-labelled test passed"; rc=1; }
    rm -f "$out"
    return "$rc"
}

# A few op tests under compute-sanitizer, memcheck and racecheck (the families with shared memory), 4 at a time.
stage_sanitizer() {
    local cs
    cs=$(command -v compute-sanitizer) || { echo "compute-sanitizer not found: skipped"; return 3; }
    local progs=() p
    for p in copy softmax layer_norm attention reduce cross_entropy; do
        [ -x "$build/tests/cuda/test_gpu_$p" ] && progs+=("test_gpu_$p")
    done
    [ ${#progs[@]} -gt 0 ] || { echo "no $build/tests/cuda/test_gpu_* program was built"; return 1; }
    local runs=() out
    for p in "${progs[@]:0:4}"; do runs+=("memcheck $p"); done
    for p in "${progs[@]:1:3}"; do runs+=("racecheck $p"); done
    out=$(mktemp -d)
    # each line "TOOL PROGRAM" becomes $4 and $5 of one sh
    # shellcheck disable=SC2016 # expanded by that sh
    printf '%s\n' "${runs[@]}" | xargs -P 4 -L 1 sh -c '
        LIBTRAIN_POISON_ALLOC=1 timeout -k 5 100 "$1" --tool "$4" --error-exitcode 99 --print-limit 20 \
            "$2/tests/cuda/$5" >"$3/$4.$5.log" 2>&1
        echo $? >"$3/$4.$5.rc"' _ "$cs" "$build" "$out"
    local bad=0 r tool prog rc what
    for r in "${runs[@]}"; do
        read -r tool prog <<<"$r"
        rc=$(cat "$out/$tool.$prog.rc" 2>/dev/null || echo "?")
        case $rc in
            0) what=ok ;;
            77) what="skipped (no device)"; bad=1 ;;
            99) what="SANITIZER ERRORS"; bad=1 ;;
            124 | 137) what="timed out"; bad=1 ;;
            *) what="FAILED (exit $rc)"; bad=1 ;;
        esac
        echo "=== $tool $prog: $what"
        cat "$out/$tool.$prog.log" 2>/dev/null
    done
    rm -rf "$out"
    return "$bad"
}

# ---- driver ----

if [ "${1:-}" = __stage ]; then
    "stage_$2"
    exit $?
fi

mkdir -p "$build"
log=${LT_GPU_CHECK_LOG:-$build/gpu-check.log}
: >"$log" || { echo "gpu-check: cannot write $log" >&2; exit 1; }
budget=${LT_GPU_CHECK_BUDGET:-460}
start_all=$(date +%s)
results=()
failed=0

say() { echo "$*" | tee -a "$log"; }

# What the terminal shows of each stage's output (the log has all of it).
show() {
    case $1 in
        gpu) cat ;;
        configure) grep -E '^-- (libtrain|  |Configuring done|Generating done)|CMake Error|native failed' ;;
        build) tail -n 15 ;;
        bench) grep -E '^(\+ |train_step|RESULT)' ;;
        nccl) grep -E '^\+ |^rank|passed|FAIL|SKIP|skipped|not found|not built|not ON|Error|error' ;;
        ctest) grep -E 'tests passed|tests failed|Total Test time|\(Failed\)|\(Timeout\)|\(Not Run\)|Skipped|^---|^ *[0-9]+ - ' ;;
        sanitizer) grep -E '^=== |ERROR SUMMARY|RACECHECK SUMMARY|not found|skipped' ;;
        *) cat ;;
    esac
}

# stage NAME CAP: runs stage_NAME under timeout (its cap, or what is left of the budget), logs all of its output,
# shows the key lines, and records ok / FAILED / skipped with its time.
stage() {
    local name=$1 cap=$2 left t0 secs rc result out
    left=$((budget - ($(date +%s) - start_all)))
    [ "$cap" -lt "$left" ] || cap=$left
    say ""
    if [ "$cap" -lt 10 ]; then
        say "=== $name: skipped, the ${budget}s budget is spent"
        results+=("$(printf '%-10s %5ss  %s' "$name" - "SKIPPED (out of time)")")
        failed=1
        return
    fi
    say "=== $name (timeout ${cap}s) $(date '+%H:%M:%S')"
    t0=$(date +%s)
    out=$(mktemp)
    timeout -k 10 "$cap" bash "$self" __stage "$name" >"$out" 2>&1
    rc=$?
    secs=$(($(date +%s) - t0))
    cat "$out" >>"$log"
    show "$name" <"$out" || true
    rm -f "$out"
    case $rc in
        0) result=ok ;;
        2) [ "$name" = gpu ] && result="NO GPU" || result="FAILED (exit 2)"; failed=1 ;;
        3) result="skipped (tool not found)" ;;
        124 | 137) result="FAILED (timed out after ${cap}s)"; failed=1 ;;
        *) result="FAILED (exit $rc)"; failed=1 ;;
    esac
    say "=== $name: $result in ${secs}s"
    results+=("$(printf '%-10s %5ss  %s' "$name" "$secs" "$result")")
    return "$rc"
}

summary() {
    say ""
    say "gpu-check summary ($(($(date +%s) - start_all))s of a ${budget}s budget, $(hostname), $(date '+%F %T'))"
    say "$(printf '%-10s %6s  %s' stage time result)"
    local r
    for r in "${results[@]}"; do say "$r"; done
    say "log: $log"
}

revision() {
    git -C "$root" rev-parse --short HEAD 2>/dev/null || { echo "? (not a git checkout)"; return; }
    git -C "$root" diff --quiet HEAD 2>/dev/null || echo " (with local changes)"
}
say "gpu-check: $root, build dir $build, $jobs cores, revision $(revision | tr -d '\n')"
if ! stage gpu 30; then
    say ""
    say "gpu-check: NO usable NVIDIA GPU on this machine (see above): nothing was built or run. Exit status 2."
    summary
    exit 2
fi
wanted=" ${LT_GPU_CHECK_STAGES:-configure build bench nccl ctest sanitizer} "
for spec in configure:150 build:270 bench:150 nccl:90 ctest:200 sanitizer:150; do
    [[ $wanted = *" ${spec%%:*} "* ]] && stage "${spec%%:*}" "${spec##*:}"
done
summary
exit "$failed"
