#!/bin/sh
# PyTorch round trip (tools/export_torch.py, tools/import_torch.py): a libtrain checkpoint exports to a state dict
# whose tensors are bitwise the checkpoint's (and libtrain's in-memory parameters) and which loads strictly into the
# plain-torch GPT-2 of tests/reference; an edited state dict imports into a checkpoint that libtrain validates and
# resumes (every CRC checked) with exactly the edited weights, and that exports back bitwise. Malformed inputs are
# refused with exit status 2. Exits 77 (skipped) without torch/h5py in /usr/bin/python3.
# Usage: torch_roundtrip_test.sh CKPT_TOOL TEXT WORKDIR SOURCE_DIR
set -eu
tool=$1 text=$2 w=$3 src=$4
py=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1 # keep tools/ and tests/ free of __pycache__
if ! "$py" -c 'import torch, h5py, numpy' 2>/dev/null; then
    echo "skipped: $py lacks torch, h5py or numpy"
    exit 77
fi
exp="$py $src/tools/export_torch.py" imp="$py $src/tools/import_torch.py"
rm -rf "$w" && mkdir -p "$w/mod" "$w/same"
ck="$w/ck/step-00000010.h5"

# 1. A checkpoint after 10 steps of a 20-step run, and libtrain's parameters at that point (raw, flat).
"$tool" tokenize "$text" "$w/data.bin"
"$tool" train "$w/data.bin" 20 10 "$w/ck" - "$w/first.loss" "$w/half.params"
test "$(cat "$w/ck/latest")" = step-00000010.h5

# 2. Export (through the directory's latest) and check: bitwise the .h5 and libtrain's memory; strict load into
#    the reference GPT; then edit one tensor.
$exp "$w/ck" "$w/a.pt"
"$py" - "$ck" "$w/a.pt" "$w/half.params" "$w/b.pt" "$src/tests/reference" <<'PY'
import json, sys
import h5py, numpy as np, torch
ck, a_pt, half, b_pt, ref = sys.argv[1:]
sys.path.insert(0, ref)
from gpt_reference import GPT

sd = torch.load(a_pt)
cfg = sd.pop("config")
f = h5py.File(ck, "r")
assert cfg == json.loads(f.attrs["model_config"]), cfg
assert set(sd) == set(f["params"]), sorted(set(sd) ^ set(f["params"]))
for name, t in sd.items():
    a = f["params"][name][()]
    assert t.dtype == torch.float32 and a.dtype == np.float32, (name, t.dtype, a.dtype)
    assert tuple(t.shape) == a.shape, (name, t.shape, a.shape)
    assert t.numpy().tobytes() == a.tobytes(), name
# The state dict, in its order, is byte for byte libtrain's flat parameter buffer.
flat = b"".join(t.numpy().tobytes() for t in sd.values())
assert flat == open(half, "rb").read(), "exported tensors differ from libtrain's parameters"

model = GPT(cfg["vocab_size"], cfg["padded_vocab_size"], cfg["block_size"], cfg["n_layer"], cfg["n_head"],
            cfg["n_embd"])
assert set(model.names) == set(sd), sorted(set(model.names) ^ set(sd))
model.load_state_dict({"p." + n.replace(".", "__"): t for n, t in sd.items()}, strict=True)
for n, p in model.named():
    assert torch.equal(p.detach(), sd[n]), n
idx = torch.randint(0, cfg["vocab_size"], (2, cfg["block_size"]), generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    logits, loss = model(idx[:, :-1], idx[:, 1:])
assert logits.shape == (2, cfg["block_size"] - 1, cfg["padded_vocab_size"]) and torch.isfinite(logits).all()
assert 0 < loss.item() < 20, loss.item()

# Edit one tensor (and nothing else) and save it with the config.
t = sd["h.1.mlp.c_fc.weight"]
sd["h.1.mlp.c_fc.weight"] = t * 0.5 + torch.linspace(-1, 1, t.numel()).reshape(t.shape)
sd["config"] = cfg
torch.save(sd, b_pt)
print("export: %d tensors bitwise equal to the .h5 and to libtrain's %d parameter bytes; reference loss %.4f"
      % (len(model.names), len(flat), loss.item()))
PY

# 3. Refusals: exit status 2, a message, and no output file.
refused() { # EXPECTED-MESSAGE-PART OUT COMMAND...
    want=$1 out=$2
    shift 2
    if "$@" > "$w/refused.out" 2> "$w/refused.err"; then echo "accepted: $*"; exit 1; else rc=$?; fi
    test "$rc" -eq 2 || { echo "exit status $rc, not 2: $*"; cat "$w/refused.err"; exit 1; }
    grep -q -- "$want" "$w/refused.err" || { echo "no '$want' in:"; cat "$w/refused.err"; exit 1; }
    test ! -e "$out" || { echo "refused but wrote $out"; exit 1; }
    test -z "$(ls -A "$(dirname "$out")" | grep '\.tmp-' || true)" || { echo "temporary left behind"; exit 1; }
}
"$py" - "$ck" "$w" "$w/a.pt" <<'PY'
import shutil, sys
import h5py, numpy as np, torch
ck, w, a_pt = sys.argv[1:]
with h5py.File(f"{w}/other.h5", "w") as f:
    f.attrs["format"] = np.bytes_("something-else")
shutil.copyfile(ck, f"{w}/v2.h5")
with h5py.File(f"{w}/v2.h5", "r+") as f:
    f.attrs.create("version", 2, dtype="<i8")
sd = torch.load(a_pt)
def save(name, **edit):
    d = dict(sd)
    for k, v in edit.items():
        k = k.replace("__", ".")
        if v is None: del d[k]
        else: d[k] = v
    torch.save(d, f"{w}/{name}.pt")
save("shape", h__0__ln_1__weight=torch.zeros(7))
save("dtype", wpe__weight=sd["wpe.weight"].double())
save("missing", ln_f__bias=None)
save("extra", lm_head__weight=sd["wte.weight"].clone())
save("config", config=dict(sd["config"], n_head=4))
save("nan", ln_f__bias=torch.full_like(sd["ln_f.bias"], float("nan")))
PY
refused "not a libtrain checkpoint" "$w/x.pt" $exp "$w/other.h5" "$w/x.pt"
refused "version 2" "$w/x.pt" $exp "$w/v2.h5" "$w/x.pt"
refused "cannot open as HDF5" "$w/x.pt" $exp "$text" "$w/x.pt"
refused "version 2" "$w/x.h5" $imp "$w/a.pt" "$w/v2.h5" "$w/x.h5"
refused "h.0.ln_1.weight' has shape (7,)" "$w/x.h5" $imp "$w/shape.pt" "$ck" "$w/x.h5"
refused "'wpe.weight' has dtype torch.float64" "$w/x.h5" $imp "$w/dtype.pt" "$ck" "$w/x.h5"
refused "missing from .*: ln_f.bias" "$w/x.h5" $imp "$w/missing.pt" "$ck" "$w/x.h5"
refused "not in the template: lm_head.weight" "$w/x.h5" $imp "$w/extra.pt" "$ck" "$w/x.h5"
refused "config differs from the template's in n_head" "$w/x.h5" $imp "$w/config.pt" "$ck" "$w/x.h5"
refused "NaN or Inf" "$w/x.h5" $imp "$w/nan.pt" "$ck" "$w/x.h5"
$exp --help | grep -q '"config"'
$imp --help | grep -q 'crc32'

# 4. Unedited import: libtrain resumes it and trains exactly as from the original checkpoint.
$imp "$w/a.pt" "$ck" "$w/same/step-00000010.h5"
"$tool" train "$w/data.bin" 20 10 - "$ck" "$w/orig.loss" "$w/orig.params"
"$tool" train "$w/data.bin" 20 10 - "$w/same/step-00000010.h5" "$w/same.loss" "$w/same.params"
cmp "$w/orig.loss" "$w/same.loss"
cmp "$w/orig.params" "$w/same.params"

# 5. Edited import: libtrain validates and resumes it (STRICT, every CRC) with exactly the edited weights (0 steps),
#    then trains on from it; everything but /params is the template's.
$imp "$w/b.pt" "$ck" "$w/mod/step-00000010.h5"
"$tool" train "$w/data.bin" 20 0 - "$w/mod/step-00000010.h5" "$w/mod0.loss" "$w/mod0.params"
"$tool" train "$w/data.bin" 20 10 - "$w/mod/step-00000010.h5" "$w/mod.loss" "$w/mod.params"
test "$(wc -l < "$w/mod.loss")" -eq 10
if cmp -s "$w/orig.loss" "$w/mod.loss"; then echo "the edited weights did not change training"; exit 1; fi

# 6. Export the edited checkpoint again: every tensor bitwise the edited state dict.
$exp "$w/mod/step-00000010.h5" "$w/c.pt"
"$py" - "$w/b.pt" "$w/c.pt" "$w/mod0.params" "$ck" "$w/mod/step-00000010.h5" "$w/mod.loss" <<'PY'
import math, sys
import h5py, numpy as np, torch
b_pt, c_pt, mod0, ck, mod, losses = sys.argv[1:]
b, c = torch.load(b_pt), torch.load(c_pt)
assert b.pop("config") == c.pop("config")
assert list(b) == list(c), (list(b), list(c))
for n in b:
    assert b[n].dtype == c[n].dtype and b[n].shape == c[n].shape, n
    assert b[n].numpy().tobytes() == c[n].numpy().tobytes(), n
assert b"".join(t.numpy().tobytes() for t in b.values()) == open(mod0, "rb").read(), \
    "libtrain resumed with other weights than the imported ones"
changed = []
with h5py.File(ck, "r") as f, h5py.File(mod, "r") as g:
    def same_attrs(x, y, where):
        assert set(x.attrs) == set(y.attrs), where
        for k in x.attrs:
            if not (where.startswith("/params/") and k == "crc32"):
                assert np.array_equal(x.attrs[k], y.attrs[k]), (where, k)
    same_attrs(f, g, "/")
    def visit(name, o):
        p = g[name]
        assert type(o) is type(p), name
        same_attrs(o, p, "/" + name)
        if isinstance(o, h5py.Dataset):
            assert o.dtype == p.dtype and o.shape == p.shape, name
            if o[()].tobytes() != p[()].tobytes():
                changed.append(name)
    f.visititems(visit)
    assert len(list(f)) == len(list(g))
assert changed == ["params/h.1.mlp.c_fc.weight"], changed
for line in open(losses):
    assert math.isfinite(float.fromhex(line.split()[1])), line
print("round trip: %d tensors bitwise identical; only %s changed in the .h5; libtrain resumed it exactly"
      % (len(b), changed[0]))
PY
echo "torch round trip: ok"
