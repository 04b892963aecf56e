#!/bin/bash
# Crash safety: SIGKILL a process that saves in a loop at random moments, TRIALS times; each time `latest` must name
# a checkpoint that validates and loads (STRICT). Stale temporaries may remain and are removed by the next save.
set -eu
tool=$1 text=$2 w=$3 trials=${4:-20}
rm -rf "$w" && mkdir -p "$w"
"$tool" tokenize "$text" "$w/data.bin"
RANDOM=7
for i in $(seq 1 "$trials"); do
    "$tool" saveloop "$w/data.bin" "$w/ck" &
    pid=$!
    # The first save must exist before a kill can be judged; then kill at a random moment within later saves.
    for _ in $(seq 1 600); do [ -f "$w/ck/latest" ] && break; sleep 0.05; done
    sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    if ! "$tool" check "$w/data.bin" "$w/ck" > "$w/check.out" 2>&1; then
        echo "trial $i: latest does not load:"; cat "$w/check.out"; ls -la "$w/ck"; exit 1
    fi
    echo "trial $i: $(cat "$w/ck/latest") loads ($(cat "$w/check.out")); $(ls -a "$w/ck" | grep -c tmp || true) temporaries left"
done
echo "$trials kill trials passed"
