"""pytest setup for the Python bindings: tests/reference/ is made importable, and python-bindings-ctypes/ too when
no libtrain package is installed (CTest sets PYTHONPATH itself; CI's python stage tests the pip-installed copy)."""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
paths = [os.path.join(ROOT, "tests", "reference")]
if importlib.util.find_spec("libtrain") is None:
    paths.append(os.path.join(ROOT, "python-bindings-ctypes"))
for p in paths:
    if p not in sys.path:
        sys.path.insert(0, p)
