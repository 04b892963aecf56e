#!/usr/bin/env bash
# Runs bench/train_step (libtrain) and bench/train_step_torch.py (PyTorch) side by side, alternating, for each
# config, and prints two tables: with the machine's OpenBLAS settings as they are, and with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset for both (or, where the machine leaves them unset, OPENBLAS_CORETYPE=Haswell for both: the
# AVX2 kernel that some machines of this image force). PyTorch gets its best settings: explicit threads, the faster
# of the two OpenMP wait policies, and glibc malloc thresholds that stop mmap/munmap churn (both use Debian's OpenMP
# OpenBLAS). Each table gives the medians over the rounds and, beside them, the lowest and highest ratio of one round
# (PyTorch's step over libtrain's in the same round): this VM's cores slow down for stretches, and the spread shows
# how far a single comparison can move. Usage: bench/run.sh [BUILD_DIR] [CONFIG...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
shift || true
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(tiny small gpt2-124M)
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-3}
py=/usr/bin/python3
exe=$build/bench/train_step
[ -x "$exe" ] || { echo "run.sh: $exe not found; build first (tools/run.sh build)" >&2; exit 2; }

# Both get the malloc thresholds. PyTorch runs under both OpenMP wait policies and is credited with the faster:
# PASSIVE stops its OpenMP threads from fighting a pthread OpenBLAS (the issue measured it as its best setting), but
# with Debian's OpenMP OpenBLAS, which both use here, the default (spinning) policy was 8% faster for PyTorch on a
# Zen 4. libtrain keeps the OpenMP default: it shares one thread pool with the OpenMP OpenBLAS, so threads that spin
# between the many short regions of a step are what it wants (PASSIVE cost it 3-25% in our runs).
tuned=(MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824)
policies=(PASSIVE ACTIVE)

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

table() {
    local label=$1; shift
    local prefix=("$@")
    echo
    echo "### $label ($threads threads, median of $rounds alternating rounds)"
    echo
    echo "| config | libtrain ms/step | PyTorch ms/step | speed-up | speed-up per round | libtrain tok/s | PyTorch tok/s | libtrain GFLOP/s | PyTorch GFLOP/s | libtrain peak RSS MB | PyTorch peak RSS MB | libtrain mallocs in steady state | PyTorch's faster OMP_WAIT_POLICY |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for c in "${configs[@]}"; do
        local steps=10
        [ "$c" = gpt2-124M ] && steps=5
        : >"$tmp/lt"
        for pol in "${policies[@]}"; do : >"$tmp/pt.$pol"; done
        for _ in $(seq "$rounds"); do
            env "${prefix[@]}" "${tuned[@]}" "$exe" --config "$c" --steps $steps --threads "$threads" | grep RESULT >>"$tmp/lt"
            for pol in "${policies[@]}"; do
                env "${prefix[@]}" "${tuned[@]}" OMP_WAIT_POLICY="$pol" "$py" "$here/train_step_torch.py" --config "$c" \
                    --steps $steps --threads "$threads" | grep RESULT >>"$tmp/pt.$pol"
            done
        done
        local lms pms="" ppol="" m
        lms=$(field ms <"$tmp/lt" | median)
        for pol in "${policies[@]}"; do
            m=$(field ms <"$tmp/pt.$pol" | median)
            if [ -z "$pms" ] || awk -v a="$m" -v b="$pms" 'BEGIN { exit !(a < b) }'; then pms=$m; ppol=$pol; fi
        done
        cp "$tmp/pt.$ppol" "$tmp/pt"
        # each round's PyTorch step (the credited policy) over libtrain's in the same round: the spread of the ratio
        local spread
        spread=$(paste <(field ms <"$tmp/lt") <(field ms <"$tmp/pt") |
            awk '{ r = $2 / $1; lo = NR == 1 || r < lo ? r : lo; hi = NR == 1 || r > hi ? r : hi }
                 END { printf "%.2f-%.2fx", lo, hi }')
        printf '| %s | %.1f | %.1f | %.2fx | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$lms" "$pms" \
            "$(awk -v a="$pms" -v b="$lms" 'BEGIN { print a / b }')" "$spread" \
            "$(field tok_s <"$tmp/lt" | median)" "$(field tok_s <"$tmp/pt" | median)" \
            "$(field gflops <"$tmp/lt" | median)" "$(field gflops <"$tmp/pt" | median)" \
            "$(field rss_mb <"$tmp/lt" | sort -g | tail -1)" "$(field rss_mb <"$tmp/pt" | sort -g | tail -1)" \
            "$(field steady_mallocs <"$tmp/lt" | sort -g | tail -1)" "$ppol"
    done
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The figures depend on the CPU more than on anything else (a Zen 4 has half a Zen 5's AVX-512 FMA throughput), so
# the CPU is named first.
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), family $(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores, $(grep -q avx512f /proc/cpuinfo && echo AVX-512 || echo no AVX-512)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
table "as this machine is set (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset})"
if [ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ]; then
    table "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for both" -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
else # the machine leaves them unset: show the other case, the AVX2 kernel that some machines of this image force
    table "OPENBLAS_CORETYPE=Haswell for both (OpenBLAS's AVX2 kernel)" OPENBLAS_CORETYPE=Haswell
fi
