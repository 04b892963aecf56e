#!/usr/bin/env bash
# Fuzzes the checkpoint reader: builds tests/fuzz/fuzz_ckpt with clang (libFuzzer, ASan + UBSan) into build-fuzz and
# runs it for SECONDS (default 60) from the seed corpus, then prints executions/s, coverage and every crash's path.
#   tools/fuzz.sh [SECONDS [libFuzzer options...]]     e.g. tools/fuzz.sh 3600, or tools/fuzz.sh 3600 -fork=2
# Installs nothing: tools/setup.sh installs clang-14, libclang-rt-14-dev and libomp-14-dev. The corpus grows in
# build-fuzz/fuzz-corpus across runs. libFuzzer runs in fork mode and carries on after a crash; each crash, leak,
# timeout or out-of-memory input (build-fuzz/fuzz-artifacts/) is replayed and put down to libhdf5 when the first
# frame of its stack outside the sanitizer runtime and libc is in libhdf5 (a bug of Debian's HDF5 1.10.8 on a crafted
# file, listed but not failed), else to libtrain: then the exit status is 1. Environment: LT_FUZZ_BUILD_DIR (default
# build-fuzz), LT_FUZZ_CC (default clang-14).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-60}
[ $# -gt 0 ] && shift
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: tools/fuzz.sh [SECONDS [libFuzzer options...]]" >&2
    exit 2
fi
build=${LT_FUZZ_BUILD_DIR:-build-fuzz}
cc=${LT_FUZZ_CC:-clang-14}
cxx=${LT_FUZZ_CXX:-${cc/clang/clang++}}
if ! command -v "$cc" >/dev/null; then
    echo "fuzz.sh: $cc not found; run tools/setup.sh (it installs clang-14 and libclang-rt-14-dev)" >&2
    exit 1
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
    # Sanitizers everywhere, warnings not errors (clang warns differently from the gcc build, which enforces
    # -Werror); no CUDA or MPI: the reader needs neither.
    args=(-DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLT_SANITIZE=ON
          -DLT_WERROR=OFF -DLT_CUDA=OFF -DLT_MPI=OFF -DLT_BUILD_EXAMPLES=OFF -DLT_BUILD_BENCH=OFF)
    command -v ninja >/dev/null && args+=(-G Ninja)
    cmake -S . -B "$build" "${args[@]}"
fi
cmake --build "$build" --target fuzz_ckpt --parallel "$(nproc)"
exe=$build/tests/fuzz/fuzz_ckpt
if [ ! -x "$exe" ]; then
    echo "fuzz.sh: $exe was not built; the configure output says why (it needs clang, libFuzzer and HDF5)" >&2
    exit 1
fi

corpus=$build/fuzz-corpus artifacts=$build/fuzz-artifacts log=$build/fuzz.log
mkdir -p "$corpus" "$artifacts"
stamp=$(mktemp)
# The target's input files (one per process, removed after each run; a crash leaves its own) go to a directory of
# ours, on tmpfs when there is one.
scratch=$(mktemp -d -p "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")" lt-fuzz.XXXXXX)
trap 'rm -rf "$stamp" "$scratch"' EXIT
export LT_FUZZ_TMPDIR=$scratch
# Leaks inside libhdf5 itself are suppressed (tests/fuzz/lsan.supp); libtrain's own are reported.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp
echo "fuzz.sh: fuzzing the checkpoint reader for ${seconds}s (corpus $corpus, seeds $build/tests/fuzz/corpus)"
start=$(date +%s)
rc=0
"$exe" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "$@" "$corpus" "$build/tests/fuzz/corpus" >"$log" 2>&1 || rc=$?
elapsed=$(($(date +%s) - start))

# The fork-mode parent's last status line: "#EXECS: cov: C ft: F corp: N exec/s E oom/timeout/crash: a/b/c ...".
last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
if [ -z "$last" ]; then
    tail -n 30 "$log"
    echo "fuzz.sh: FAILED: libFuzzer (exit $rc) reported no progress"
    exit 1
fi
execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' <<<"$last")
echo "fuzz.sh: ${execs:-0} executions in ${elapsed}s: $((${execs:-0} / (elapsed > 0 ? elapsed : 1))) exec/s"
cov=$(sed -n 's/^#[0-9]*: \(cov: [0-9]* ft: [0-9]*\).*/\1/p' <<<"$last")
echo "fuzz.sh: coverage: $cov (libtrain's instrumented edges and features; libhdf5 is not instrumented)"
echo "fuzz.sh: corpus now $(find "$corpus" -type f | wc -l) inputs; log in $log"

ours=0 theirs=0
while IFS= read -r unit; do
    out=$(timeout 120 "$exe" -timeout=10 -rss_limit_mb=2048 "$unit" 2>&1) && {
        echo "fuzz.sh: did not reproduce (flaky): $unit"
        continue
    }
    # The first stack frame outside the sanitizer runtime, libc and libFuzzer, and the report's first line.
    runtime='__interceptor_|__asan|__sanitizer|__lsan|sanitizer_common|libc\.so|sysdeps|fuzzer::'
    runtime+='|in (malloc|calloc|realloc|free|memcpy|memmove|memset) '
    frame=$(grep -E '^ +#[0-9]+ ' <<<"$out" | grep -vE "$runtime" | head -n 1 |
        sed 's/^ *//; s/ (BuildId: [0-9a-f]*)//' || true)
    what=$(grep -m 1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|^fuzz_ckpt: ' <<<"$out" |
        sed 's/^==[0-9]*==//' || true)
    if grep -q 'out-of-memory (used:' <<<"$what"; then
        # An RSS report ("out-of-memory (used: N; limit: M)") lists the live heap by allocation site: it is
        # libtrain's only when one of those sites is in libtrain (ASan's quarantine of libhdf5's freed buffers can
        # also push RSS over the limit). A single malloc over the limit ("out-of-memory (malloc(N))") comes with that
        # allocation's stack and, like a crash, belongs to its first frame outside the runtime (seen: libhdf5 asking
        # for 4 GB for a corrupt B-tree header).
        if grep -qE ' in lt_|/src/(ckpt|core|tensor|train|nn|ops)/' <<<"$out"; then
            ours=$((ours + 1))
            echo "fuzz.sh: IN LIBTRAIN (out of memory): $unit"
        else
            theirs=$((theirs + 1))
            echo "fuzz.sh: out of memory outside libtrain (libhdf5's allocations or ASan's quarantine): $unit"
        fi
    elif grep -q 'libhdf5' <<<"$frame"; then
        theirs=$((theirs + 1))
        echo "fuzz.sh: in libhdf5, not libtrain: $unit"
    else
        ours=$((ours + 1))
        echo "fuzz.sh: IN LIBTRAIN: $unit"
    fi
    echo "    ${what:-?}"
    echo "    at ${frame:-?}"
done < <(find "$artifacts" -type f -newer "$stamp" | sort)

[ $rc -eq 0 ] || echo "fuzz.sh: libFuzzer exited $rc (expected with crashes in fork mode)"
echo "fuzz.sh: $ours crash(es) in libtrain, $theirs in libhdf5 (reproduce one with: $exe FILE)"
[ $ours -eq 0 ] || { echo "fuzz.sh: FAILED"; exit 1; }
echo "fuzz.sh: no crash in libtrain"
