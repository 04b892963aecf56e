#!/bin/sh
# Interop: h5dump and h5py read a checkpoint written by libtrain; h5py checks the layout and every CRC-32 with zlib.
set -eu
h5dump=$1 dir=$2
file="$dir/$(cat "$dir/latest")"
"$h5dump" -A "$file" > "$dir/h5dump.txt"
grep -q '"libtrain-checkpoint"' "$dir/h5dump.txt"
"$h5dump" -d /params/wte.weight "$file" | grep -q 'H5T_IEEE_F32LE'
/usr/bin/python3 - "$file" <<'PY'
import sys, json, zlib
import h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] == b"libtrain-checkpoint", f.attrs["format"]
assert int(f.attrs["version"]) == 1 and int(f.attrs["world_size"]) == 1
cfg = json.loads(f.attrs["model_config"])
n = 0
for name, d in f["params"].items():
    for ds in (d, f["optim"][name]["m"], f["optim"][name]["v"]):
        a = ds[()]
        assert a.dtype == np.float32 and np.isfinite(a).all(), name
        assert zlib.crc32(a.astype("<f4").tobytes()) == int(ds.attrs["crc32"]), name
    n += 1
assert f["params/wte.weight"].shape == (cfg["padded_vocab_size"], cfg["n_embd"])
assert f["data"].shape == (1, 3) and f["rng/dropout"].shape == (1, 2)
assert int(f["optim"].attrs["step"]) == int(f.attrs["step"]) == int(f["schedule"].attrs["step"])
print("h5py read %d parameters of a step-%d checkpoint, every CRC matches" % (n, int(f.attrs["step"])))
PY
