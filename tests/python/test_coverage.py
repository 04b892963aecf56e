"""The bindings cannot drift from the headers: every LT_API function is bound (with a prototype) or listed in
DELIBERATELY_UNBOUND with a reason, and only _lib.py loads the shared library."""
import glob
import os
import re

from conftest import ROOT
from libtrain import _lib


def header_functions():
    names = set()
    for h in glob.glob(os.path.join(ROOT, "include", "libtrain", "*.h")):
        text = re.sub(r"/\*.*?\*/", "", open(h).read(), flags=re.S)
        for m in re.finditer(r"LT_API\s+[^;{]*?\b(lt_\w+)\s*\(", text):
            names.add(m.group(1))
    return names


def test_every_lt_api_function_is_bound_or_deliberately_unbound():
    names = header_functions()
    assert len(names) > 100
    unaccounted = sorted(names - set(_lib.PROTOTYPES) - set(_lib.DELIBERATELY_UNBOUND))
    assert not unaccounted, f"LT_API functions neither bound nor in DELIBERATELY_UNBOUND: {unaccounted}"


def test_no_stale_bindings_and_reasons_given():
    names = header_functions()
    assert not sorted(set(_lib.PROTOTYPES) - names), "bound functions that no header declares"
    assert not sorted(set(_lib.DELIBERATELY_UNBOUND) - names)
    assert all(len(r) > 10 for r in _lib.DELIBERATELY_UNBOUND.values())
    assert not set(_lib.PROTOTYPES) & set(_lib.DELIBERATELY_UNBOUND)
    assert _lib.MISSING == [], f"the loaded library lacks {_lib.MISSING}"


def test_only_lib_module_loads_the_library():
    pkg = os.path.dirname(_lib.__file__)
    for f in glob.glob(os.path.join(pkg, "*.py")):
        if os.path.basename(f) == "_lib.py":
            continue
        src = open(f).read()
        assert "CDLL" not in src and "_dll" not in src and "cdll" not in src, f


def test_abi_and_version():
    assert _lib.C.lt_abi_version() == _lib.ABI_VERSION == 1
    assert re.match(r"\d+\.\d+\.\d+", _lib.VERSION)


def test_help_reads_like_a_manual():
    import pydoc
    import libtrain
    text = pydoc.render_doc(libtrain.Tensor, renderer=pydoc.plaintext)
    for word in ("Autograd", "backward", "numpy", "DLPack", "Lifetime", "reshape", "Errors"):
        assert word in text
