#!/usr/bin/python3
"""Import a PyTorch state dict's parameters into a libtrain checkpoint.

Usage: import_torch.py IN.pt TEMPLATE.h5 OUT.h5

IN.pt is a dict of GPT-2-named tensors as tools/export_torch.py writes it (`wte.weight`, `h.0.attn.c_attn.weight`,
..., `ln_f.bias`; Conv1D weights [in, out]). An optional "config" entry (a dict, as export_torch.py writes) must then
equal TEMPLATE.h5's model_config; no other non-tensor entry is accepted.

TEMPLATE.h5 is a libtrain checkpoint (docs/checkpoint-format.md, format version 1; or a checkpoint directory, whose
`latest` is used) of the same model. OUT.h5 is a byte copy of it in which each /params/<name> dataset is overwritten
in place with IN.pt's tensor and its `crc32` attribute (u32) recomputed as libtrain computes it: zlib's CRC-32 of
the raw little-endian bytes. Everything else (/optim moments, RNG, data cursor, schedule, step, root attributes)
is the template's, unchanged: resume OUT.h5 with LT_CKPT_STRICT to continue the template's run with the new weights,
or with LT_CKPT_PARAMS_ONLY to fine-tune from them with a fresh optimizer.

Refused (exit status 2, nothing written): a template that is not a libtrain checkpoint of version 1, a config that
differs, a name missing from IN.pt or not in the template, a shape or dtype that differs from the template's dataset
(no conversion is ever done: f32 checkpoints take float32 tensors, f64 ones float64), a non-finite value unless
--allow-nonfinite.

OUT.h5 is written as .OUT.h5.tmp-<pid> in its directory, closed, re-read and checked (every /params CRC), fsynced,
and renamed into place; the directory is then fsynced. A checkpoint directory's `latest` is not changed: pass the
file itself to lt_trainer_resume / lt_ckpt_validate, or update `latest` yourself.

Exit status: 0 on success; 2 when the input is refused or on a usage error; 1 on other errors.
"""
import argparse
import json
import os
import shutil
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import NP_DTYPES, Refused, check_header, committed, resolve  # noqa: E402

TORCH_DTYPES = {"f32": "torch.float32", "f64": "torch.float64"}


def load_state_dict(path, template_config):
    """IN.pt as {name: contiguous CPU tensor}, after checking the optional config entry."""
    import torch

    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        raise Refused(f"{path}: cannot load with torch.load ({type(e).__name__}: {e})")
    if not isinstance(sd, dict):
        raise Refused(f"{path}: holds a {type(sd).__name__}, not a state dict")
    sd = dict(sd)
    if "config" in sd:
        cfg = sd.pop("config")
        if not isinstance(cfg, dict):
            raise Refused(f"{path}: its 'config' entry is a {type(cfg).__name__}, not a dict")
        if cfg != template_config:
            diff = sorted(k for k in set(cfg) | set(template_config) if cfg.get(k) != template_config.get(k))
            raise Refused(f"{path}: its config differs from the template's in {', '.join(diff)}: "
                          f"{json.dumps(cfg, sort_keys=True)} vs {json.dumps(template_config, sort_keys=True)}")
    for k, v in sd.items():
        if not isinstance(k, str):
            raise Refused(f"{path}: a key that is not a string: {k!r}")
        if not isinstance(v, torch.Tensor):
            raise Refused(f"{path}: entry '{k}' is a {type(v).__name__}, not a tensor")
    return sd


def to_numpy(name, t, want_dtype, want_shape, allow_nonfinite):
    import numpy as np
    import torch

    if str(t.dtype) != want_dtype:
        raise Refused(f"'{name}' has dtype {t.dtype}; the template stores {want_dtype} (no conversion is done)")
    if tuple(t.shape) != tuple(want_shape):
        raise Refused(f"'{name}' has shape {tuple(t.shape)}; the template's is {tuple(want_shape)}")
    if t.layout != torch.strided or t.is_quantized:
        raise Refused(f"'{name}' is not a dense tensor")
    a = t.detach().cpu().contiguous().numpy()
    if not allow_nonfinite and not np.isfinite(a).all():
        raise Refused(f"'{name}' holds NaN or Inf (pass --allow-nonfinite to import it anyway)")
    return a


def import_(src, template, out, allow_nonfinite=False):
    import h5py
    import numpy as np

    tpath = resolve(template)
    try:
        tf = h5py.File(tpath, "r")
    except OSError as e:
        raise Refused(f"{tpath}: cannot open as HDF5 ({e})")
    with tf:
        config, dtype = check_header(tf, tpath)
        shapes = {}
        for name, ds in tf["params"].items():
            if not isinstance(ds, h5py.Dataset):
                raise Refused(f"{tpath}: /params/{name} is not a dataset")
            shapes[name] = ds.shape
    sd = load_state_dict(src, config)
    missing = sorted(set(shapes) - set(sd))
    extra = sorted(set(sd) - set(shapes))
    if missing or extra:
        msg = []
        if missing:
            msg.append(f"missing from {src}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if extra:
            msg.append(f"not in the template: {', '.join(extra[:8])}{' ...' if len(extra) > 8 else ''}")
        raise Refused("names differ: " + "; ".join(msg))
    le = np.dtype(NP_DTYPES[dtype])
    arrays = {}
    for name in shapes:  # convert and check everything before writing anything
        try:
            arrays[name] = to_numpy(name, sd[name], TORCH_DTYPES[dtype], shapes[name], allow_nonfinite)
        except Refused as e:
            raise Refused(f"{src}: {e}")

    with committed(out) as tmp:
        shutil.copyfile(tpath, tmp)
        crcs = {}
        with h5py.File(tmp, "r+") as f:
            for name, a in arrays.items():
                ds = f["params"][name]
                if ds.dtype != le or ds.shape != a.shape or ds.compression or ds.chunks is not None:
                    raise Refused(f"{tpath}: /params/{name} is not a contiguous {le} dataset of shape {a.shape}")
                raw = a.astype(le, copy=False)
                ds.write_direct(np.ascontiguousarray(raw))
                crcs[name] = zlib.crc32(raw.tobytes())
                # libtrain's reader wants exactly a scalar H5T_STD_U32LE.
                ds.attrs.create("crc32", np.uint32(crcs[name]), dtype=np.dtype("<u4"))
        with h5py.File(tmp, "r") as f:  # re-read: bytes and CRCs as a libtrain reader will see them
            for name, a in arrays.items():
                ds = f["params"][name]
                back = ds[()]
                stored = int(ds.attrs["crc32"])
                if (ds.attrs.get_id("crc32").dtype != np.dtype("<u4") or stored != crcs[name]
                        or zlib.crc32(back.astype(le, copy=False).tobytes()) != stored
                        or back.tobytes() != a.astype(le, copy=False).tobytes()):
                    raise RuntimeError(f"/params/{name} did not read back as written")
    n = sum(a.size for a in arrays.values())
    print(f"import_torch: {len(arrays)} tensors ({n} {dtype} elements) from {src} into a copy of {tpath} -> {out}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="import_torch.py", description="\n\n".join(p for p in __doc__.split("\n\n") if not p.startswith("Usage:")),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", metavar="IN.pt", help="state dict written by torch.save (e.g. by export_torch.py)")
    ap.add_argument("template", metavar="TEMPLATE.h5", help="libtrain checkpoint of the same model (or its directory)")
    ap.add_argument("out", metavar="OUT.h5", help="checkpoint file to write")
    ap.add_argument("--allow-nonfinite", action="store_true", help="accept NaN/Inf values")
    args = ap.parse_args(argv)
    try:
        import_(args.src, args.template, args.out, args.allow_nonfinite)
    except Refused as e:
        print(f"import_torch: refused: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line for the user, status 1
        print(f"import_torch: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
