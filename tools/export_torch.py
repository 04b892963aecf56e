#!/usr/bin/python3
"""Export a libtrain checkpoint's parameters as a PyTorch state dict.

Usage: export_torch.py CKPT.h5 OUT.pt

CKPT.h5 is a libtrain checkpoint (docs/checkpoint-format.md, format "libtrain-checkpoint", version 1), or a checkpoint
directory whose `latest` file names one. OUT.pt is written with torch.save and holds ONE dict:

  * one torch.Tensor per dataset under /params, keyed by the GPT-2 name libtrain stores it under (`wte.weight`,
    `wpe.weight`, `h.<i>.ln_1.weight`, `h.<i>.attn.c_attn.weight`, ..., `ln_f.bias`), with exactly the stored dtype
    (float32 for dtype "f32", float64 for "f64") and shape. Weights keep GPT-2's Conv1D layout [in, out];
    `wte.weight` has `padded_vocab_size` rows; the LM head is tied to `wte` and has no entry of its own.
    Tensors are in GPT-2 order (wte, wpe, h.0 ... h.<n_layer-1>, ln_f).
  * the key "config" (the only non-tensor value): a plain dict, the checkpoint's `model_config` JSON root attribute
    decoded (vocab_size, padded_vocab_size, block_size, n_layer, n_head, n_embd, dropout).

So load it with:   sd = torch.load("OUT.pt"); config = sd.pop("config"); model.load_state_dict(sd)

Only the parameters are exported: the AdamW moments (/optim), RNG, data cursor and schedule stay in the .h5 (use
tools/import_torch.py with the original checkpoint as the template to put edited parameters back). Every tensor's
CRC-32 is checked against its `crc32` attribute before anything is written. OUT.pt is written under a temporary name
in its directory and renamed into place.

Exit status: 0 on success; 2 when the input is refused (not a libtrain checkpoint, another format version, a dtype
or shape that disagrees with the file's own attributes, a CRC mismatch) or on a usage error; 1 on other errors.
"""
import argparse
import contextlib
import json
import os
import re
import sys
import zlib

FORMAT = b"libtrain-checkpoint"
VERSION = 1
NP_DTYPES = {"f32": "<f4", "f64": "<f8"}
LAYER_SUFFIXES = [
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
]


class Refused(Exception):
    """The input is not something this tool accepts (exit status 2)."""


def attr_str(attrs, name, path):
    """A fixed-length string root attribute (h5py returns bytes) as str."""
    if name not in attrs:
        raise Refused(f"{path}: no '{name}' root attribute: not a libtrain checkpoint")
    v = attrs[name]
    if isinstance(v, bytes):
        return v.decode("ascii")
    if isinstance(v, str):
        return v
    raise Refused(f"{path}: root attribute '{name}' is not a string ({type(v).__name__})")


def resolve(path):
    """A checkpoint file, or the file a checkpoint directory's `latest` names."""
    if os.path.isdir(path):
        latest = os.path.join(path, "latest")
        try:
            with open(latest) as f:
                name = f.read().strip()
        except OSError as e:
            raise Refused(f"{path}: a directory without a readable 'latest' ({e.strerror})")
        if not name or "/" in name or name.startswith("."):
            raise Refused(f"{latest}: does not hold a bare file name")
        return os.path.join(path, name)
    return path


def check_header(f, path):
    """Validates the root attributes this tool relies on; returns (model_config dict, dtype name)."""
    fmt = f.attrs.get("format")
    if fmt is None:
        raise Refused(f"{path}: no 'format' root attribute: not a libtrain checkpoint")
    if isinstance(fmt, str):
        fmt = fmt.encode()
    if fmt != FORMAT:
        raise Refused(f"{path}: format is {fmt!r}, not {FORMAT!r}: not a libtrain checkpoint")
    if "version" not in f.attrs:
        raise Refused(f"{path}: no 'version' root attribute")
    try:
        version = int(f.attrs["version"])
    except (TypeError, ValueError):
        raise Refused(f"{path}: the 'version' root attribute is not an integer")
    if version != VERSION:
        raise Refused(f"{path}: checkpoint format version {version}; this tool reads version {VERSION} only")
    try:
        config = json.loads(attr_str(f.attrs, "model_config", path))
    except json.JSONDecodeError as e:
        raise Refused(f"{path}: model_config is not valid JSON ({e})")
    if not isinstance(config, dict):
        raise Refused(f"{path}: model_config is not a JSON object")
    dtype = attr_str(f.attrs, "dtype", path)
    if dtype not in NP_DTYPES:
        raise Refused(f"{path}: dtype is '{dtype}'; expected one of {sorted(NP_DTYPES)}")
    if "params" not in f or not hasattr(f["params"], "items"):
        raise Refused(f"{path}: no /params group")
    return config, dtype


def gpt2_order(names, config):
    """GPT-2's parameter order when the names are exactly GPT-2's for config's n_layer; else a natural sort."""
    n_layer = config.get("n_layer")
    if isinstance(n_layer, int) and n_layer >= 0:
        want = ["wte.weight", "wpe.weight"]
        want += [f"h.{l}.{s}" for l in range(n_layer) for s in LAYER_SUFFIXES]
        want += ["ln_f.weight", "ln_f.bias"]
        if sorted(want) == sorted(names):
            return want
    key = lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]
    return sorted(names, key=key)


def read_params(path):
    """Reads and checks /params. Returns (config, dtype name, [(name, numpy array)] in GPT-2 order)."""
    import h5py
    import numpy as np

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise Refused(f"{path}: cannot open as HDF5 ({e})")
    with f:
        config, dtype = check_header(f, path)
        want = np.dtype(NP_DTYPES[dtype])
        group = f["params"]
        names = list(group.keys())
        if not names:
            raise Refused(f"{path}: /params is empty")
        out = []
        for name in gpt2_order(names, config):
            ds = group[name]
            if not isinstance(ds, h5py.Dataset):
                raise Refused(f"{path}: /params/{name} is not a dataset")
            if ds.dtype != want:
                raise Refused(f"{path}: /params/{name} has type {ds.dtype}, but the file's dtype is {dtype} ({want})")
            a = np.ascontiguousarray(ds[()])
            if a.shape != ds.shape:
                raise Refused(f"{path}: /params/{name} read with shape {a.shape}, stored {ds.shape}")
            if "crc32" not in ds.attrs:
                raise Refused(f"{path}: /params/{name} has no crc32 attribute")
            crc = zlib.crc32(a.astype(want, copy=False).tobytes())
            if crc != int(ds.attrs["crc32"]):
                raise Refused(f"{path}: /params/{name}: CRC-32 {crc:#010x} but the file says "
                              f"{int(ds.attrs['crc32']):#010x}: corrupt")
            out.append((name, a))
        return config, dtype, out


@contextlib.contextmanager
def committed(out):
    """Yields a temporary path beside out; when the block succeeds, fsyncs it, renames it to out and fsyncs the
    directory, so out is either the old file or the complete new one. On failure the temporary file is removed."""
    d = os.path.dirname(os.path.abspath(out))
    tmp = os.path.join(d, f".{os.path.basename(out)}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export(ckpt, out):
    import collections

    import torch

    path = resolve(ckpt)
    config, dtype, params = read_params(path)
    sd = collections.OrderedDict()
    for name, a in params:
        t = torch.from_numpy(a.astype(a.dtype.newbyteorder("="), copy=False))
        assert t.shape == a.shape and str(t.dtype) == {"f32": "torch.float32", "f64": "torch.float64"}[dtype]
        sd[name] = t
    sd["config"] = config
    with committed(out) as tmp:
        torch.save(sd, tmp)
    n = sum(a.size for _, a in params)
    print(f"export_torch: {len(params)} tensors ({n} {dtype} elements) from {path} -> {out}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="export_torch.py", description="\n\n".join(p for p in __doc__.split("\n\n") if not p.startswith("Usage:")),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", metavar="CKPT.h5", help="libtrain checkpoint file (or a checkpoint directory)")
    ap.add_argument("out", metavar="OUT.pt", help="PyTorch file to write")
    args = ap.parse_args(argv)
    try:
        export(args.ckpt, args.out)
    except Refused as e:
        print(f"export_torch: refused: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line for the user, status 1
        print(f"export_torch: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
