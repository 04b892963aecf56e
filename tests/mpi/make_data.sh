#!/bin/sh
# make_data.sh DIST_TOOL DIR: writes DIR/text.txt (about 60 KB of made-up sentences, the same on every run) and its
# byte-level shard DIR/text.bin, the data of every mpi test.
set -eu
tool=$1 dir=$2
mkdir -p "$dir"
awk 'BEGIN {
    split("the a one every some rank model step batch token loss grad buffer bucket signal node", w, " ")
    split("reads writes sends keeps averages stops trains holds learns waits", v, " ")
    s = 12345
    for (i = 0; i < 2400; i++) {
        s = (s * 1103515245 + 12345) % 2147483648; a = w[s % 16 + 1]
        s = (s * 1103515245 + 12345) % 2147483648; b = v[s % 10 + 1]
        s = (s * 1103515245 + 12345) % 2147483648; c = w[s % 16 + 1]
        printf "%s %s %s.%s", a, b, c, (i % 7 == 6) ? "\n" : " "
    }
}' >"$dir/text.txt"
"$tool" tokenize "$dir/text.txt" "$dir/text.bin"
echo "wrote $dir/text.bin from $(wc -c <"$dir/text.txt") bytes of text"
