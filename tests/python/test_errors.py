"""Every error class for its cause; Python-side checks raise before C; the interpreter keeps running."""
import os
import subprocess
import sys

import numpy as np
import pytest

import libtrain as lt
from libtrain import errors
from conftest import ROOT


def test_class_hierarchy_matches_status_codes():
    assert issubclass(lt.ShapeError, ValueError) and issubclass(lt.DTypeError, TypeError)
    assert issubclass(lt.RangeError, IndexError) and issubclass(lt.OutOfMemoryError, MemoryError)
    assert issubclass(lt.LibtrainIOError, OSError) and issubclass(lt.UnsupportedError, NotImplementedError)
    assert issubclass(lt.ArgumentError, ValueError)
    for code in range(1, 13):
        cls = errors.STATUS_CODES[code]
        assert issubclass(cls, lt.LibtrainError) and cls.status == code
        assert lt._lib.C.lt_status_name(code).decode() == cls.status_name
    # BackendError (CUDA/MPI/HDF5) and InternalError (a bug) have no trigger in a CPU build: the mapping is checked.
    assert isinstance(errors.error_for_status(10, "x"), lt.BackendError)
    assert isinstance(errors.error_for_status(12, "x"), lt.InternalError)
    assert isinstance(errors.error_for_status(9, "x"), lt.UnsupportedError)


def test_c_errors_carry_lt_last_error():
    a, b = lt.zeros(4, 3), lt.zeros(5, 2)
    with pytest.raises(lt.ShapeError, match="lt_matmul"):
        a @ b
    with pytest.raises(lt.ShapeError):
        lt.zeros(2, 3) + lt.zeros(4, 5)
    with pytest.raises(lt.DTypeError, match="lt_exp"):
        lt.tensor([1, 2]).exp()
    with pytest.raises(lt.DTypeError):
        lt.zeros(2) + lt.zeros(2, dtype="f64")
    with pytest.raises(lt.ArgumentError, match="lt_set_num_threads"):
        lt.set_num_threads(-1)
    with pytest.raises(lt.DeviceError, match="cuda"):
        lt.zeros(2, device="cuda")
    with pytest.raises(lt.OutOfMemoryError):
        lt.zeros(2 ** 40, 2 ** 20)
    with pytest.raises(lt.RangeError, match="lt_slice"):
        lt.zeros(4).slice(0, 2, 9)
    with pytest.raises(lt.RangeError):
        lt.zeros(2, 2).sum(5)
    t = lt.tensor([1.0, 2.0], requires_grad=True)
    loss = (t * t).sum()
    loss.backward()
    with pytest.raises(lt.StateError):
        loss.backward()


def test_data_errors(tmp_path):
    with pytest.raises(lt.LibtrainIOError, match="no_such"):
        lt.data.Dataset(str(tmp_path / "no_such.bin"))
    bad = tmp_path / "odd.bin"
    bad.write_bytes(b"\x01\x02\x03")
    with pytest.raises(lt.FormatError):
        lt.data.Dataset(str(bad))


def test_python_side_checks_raise_before_c():
    with pytest.raises(lt.ArgumentError, match="negative"):
        lt.zeros(2, -3)
    with pytest.raises(lt.ArgumentError):
        lt.zeros(2.5)
    with pytest.raises(lt.ArgumentError):
        lt.zeros(*([1] * 9))
    with pytest.raises(lt.DTypeError):
        lt.from_numpy(np.zeros(3, np.complex64))
    with pytest.raises(lt.ArgumentError):
        lt.from_numpy([1, 2, 3])
    with pytest.raises(lt.ArgumentError):
        lt.zeros(3)[::-1]
    with pytest.raises(lt.RangeError):
        lt.zeros(3)[3]
    with pytest.raises(TypeError):
        lt.zeros(3) + "x"
    with pytest.raises(lt.ArgumentError):
        lt.data.Dataset(42)


def test_interpreter_keeps_running_after_errors():
    for _ in range(100):
        with pytest.raises(lt.ShapeError):
            lt.zeros(3, 4) @ lt.zeros(5, 6)
    assert (lt.ones(2, 2) @ lt.ones(2, 2)).sum().item() == 8.0


def test_missing_library_says_where_it_looked():
    env = dict(os.environ, LIBTRAIN_LIBRARY="/nonexistent/libtrain.so.1",
               PYTHONPATH=os.path.join(ROOT, "python-bindings-ctypes"))
    r = subprocess.run([sys.executable, "-c", "import libtrain"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr and "/nonexistent/libtrain.so.1" in r.stderr and "ABI 1" in r.stderr
    r = subprocess.run([sys.executable, "-c", "import libtrain"], capture_output=True, text=True,
                       env=dict(env, LIBTRAIN_LIBRARY="libm.so.6"))
    assert r.returncode != 0 and "not libtrain" in r.stderr
