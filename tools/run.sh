#!/usr/bin/env bash
# The README's two commands, each idempotent and incremental (a second run rebuilds only what changed):
#   tools/run.sh train [args]       setup, configure, build, then run the main example with args
#   tools/run.sh test [ctest args]  setup, configure, build, then the whole CTest suite (e.g. `test -L unit`)
#   tools/run.sh build              setup, configure and build only (examples, tests, bench/)
# Environment: LT_BUILD_DIR (default build), LT_CMAKE_ARGS (extra configure arguments, e.g. -DLT_SANITIZE=ON),
# LT_SKIP_SETUP=1 (skip tools/setup.sh, e.g. offline), LT_TEST_TIMEOUT (seconds per test, default 600).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${LT_BUILD_DIR:-build}
jobs=$(nproc)
main_example=train_gpt

usage() {
    echo "usage: tools/run.sh train [args...] | tools/run.sh test [ctest args...] | tools/run.sh build" >&2
    exit 2
}

# Configures on the first run (or when LT_CMAKE_ARGS asks for something), then builds incrementally:
# `cmake --build` re-runs configure by itself when a CMakeLists.txt or a globbed directory changed.
configure_and_build() {
    [ "${LT_SKIP_SETUP:-0}" = 1 ] || "$root/tools/setup.sh"
    local args=()
    read -r -a args <<<"${LT_CMAKE_ARGS:-}"
    if [ ! -f "$build/CMakeCache.txt" ]; then
        command -v ninja >/dev/null 2>&1 && args=(-G Ninja "${args[@]}")
        cmake -S . -B "$build" "${args[@]}"
    elif [ ${#args[@]} -gt 0 ]; then
        cmake -S . -B "$build" "${args[@]}"
    fi
    cmake --build "$build" --parallel "$jobs"
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
    train)
        configure_and_build
        exe="$build/examples/$main_example"
        [ -x "$exe" ] || { echo "run.sh: $exe was not built (is examples/$main_example.c there?)" >&2; exit 1; }
        exec "$exe" "$@"
        ;;
    test)
        configure_and_build
        exec ctest --test-dir "$build" --output-on-failure --parallel "$jobs" --timeout "${LT_TEST_TIMEOUT:-600}" "$@"
        ;;
    build) configure_and_build ;;
    *) usage ;;
esac
