"""Argument checks shared by the public kernel fronts. Each raises before any memory is touched,
with a message that names the argument and the offending shape, dtype or value.

The rules, the same for every kernel:
  * arrays must be numpy.ndarray (lists, tensors, None are refused with TypeError);
  * floating inputs must be float32 or float64 (TypeError otherwise); all must share one dtype;
  * an input that is not C-contiguous (a transposed or strided view) or not in native byte order
    is copied (a GEMM's operands may also be Fortran-contiguous, see gemm_operand); an output
    buffer is never copied: it must already be C-contiguous, aligned, writeable and of the exact
    shape and dtype (ValueError otherwise);
  * an output may not overlap an input, except where a kernel allows exactly that input
    (for example out=logits).
"""
from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def ndarray(name: str, a: object) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    return a


def float_input(name: str, a: object, ndim: int | None = None, shape_doc: str = "") -> np.ndarray:
    """A float32/float64 array (of `ndim` dimensions unless None), C-contiguous (copied if not)."""
    a = ndarray(name, a)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {shape_doc}, got shape {a.shape}")
    if a.dtype.kind != "f" or a.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


def index_input(name: str, a: object, n: int | None = None) -> np.ndarray:
    """An integer array (of shape (n,) unless n is None), as C-contiguous int64 (copied unless
    it is one)."""
    a = ndarray(name, a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")
    if n is not None and a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match, got {a.shape}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        i = int(np.argmax(a > np.iinfo(np.int64).max))
        raise ValueError(f"{name}[{i}] = {a[i]} does not fit in int64")
    return np.ascontiguousarray(a, dtype=np.int64)


def index_range(name: str, a: np.ndarray, hi: int) -> None:
    """Every value of the int64 array `a` in [0, hi); the first one that is not is named."""
    bad = (a < 0) | (a >= hi)
    if bad.any():
        i = np.unravel_index(int(np.argmax(bad)), a.shape)
        where = ", ".join(map(str, i))
        raise ValueError(f"{name}[{where}] = {a[i]} is outside [0, {hi})")


def same_layout(name: str, a: np.ndarray, like_name: str, like: np.ndarray) -> None:
    """`a` has the shape and dtype of `like` (two inputs of one elementwise kernel)."""
    if a.shape != like.shape:
        raise ValueError(f"{name} must have the shape of {like_name} {like.shape}, got {a.shape}")
    if a.dtype != like.dtype:
        raise TypeError(f"{name} must have the dtype of {like_name} ({like.dtype}), got {a.dtype}")


def output(name: str, out: object, shape: tuple[int, ...], dtype: np.dtype,
           inputs: dict[str, np.ndarray],
           may_be: np.ndarray | tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """`out` checked as a buffer to write (shape, dtype, layout, no overlap), or a new one.
    `may_be`: the input(s) that out may be exactly (in place), but not partly overlap."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    out = ndarray(name, out)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError(f"{name} must be C-contiguous and aligned (it is written in place)")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    allowed = may_be if isinstance(may_be, tuple) else (may_be,)
    for input_name, a in inputs.items():
        # the cheap bounds test first: _same_view reads __array_interface__, which made this
        # function 8 us for 5 inputs instead of 2.5 (a third of a small layernorm call)
        if not np.may_share_memory(out, a):
            continue
        in_place_ok = any(a is b for b in allowed)
        if in_place_ok and _same_view(out, a):
            continue  # exactly the allowed input: same memory, same layout
        raise ValueError(f"{name} overlaps {input_name}" + (
            f"; only {name}={input_name} exactly is allowed" if in_place_ok else ""))
    return out


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides)


def choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value  # type: ignore[return-value]


def real_in(name: str, value: object, lo: float, hi: float) -> float:
    """A real number in [lo, hi] (NaN is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return float(value)


def integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def float_array(name: str, a: object, ndim: int, shape_doc: str,
                dtype: np.dtype | None = None, like: str = "") -> np.ndarray:
    """A float32/float64 array of `ndim` dimensions (of `dtype`, the dtype of `like`, if given),
    checked but not copied: see gemm_operand for the layout."""
    a = ndarray(name, a)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {shape_doc}, got shape {a.shape}")
    native = a.dtype if a.dtype.isnative else a.dtype.newbyteorder("=")
    if native not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if dtype is not None and native != dtype:
        raise TypeError(f"{name} must have the dtype of {like}, {dtype}, got {a.dtype}")
    return a


BLAS_INT_MAX = 2**31 - 1  # BLAS's Fortran INTEGER: 32 bits in the LP64 BLAS that scipy ships


def blas_sizes(kernel: str, **sizes: int) -> None:
    """Each GEMM dimension must fit BLAS's 32-bit integer (element counts may exceed it)."""
    if max(sizes.values()) <= BLAS_INT_MAX:
        return
    letter, n = max(sizes.items(), key=lambda item: item[1])
    raise ValueError(f"{kernel}: {letter} = {n} exceeds the BLAS integer limit "
                     f"({BLAS_INT_MAX}); split the call into smaller blocks")


def gemm_operand(a: np.ndarray) -> np.ndarray:
    """An input as a GEMM reads it without a copy: C-contiguous or Fortran-contiguous (a
    transposed view, read through BLAS's transpose flags), aligned, native byte order.
    Anything else (a strided view, big-endian, unaligned) is copied to C order."""
    flags = a.flags
    if (flags.c_contiguous or flags.f_contiguous) and flags.aligned and a.dtype.isnative:
        return a
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")


def inplace_arrays(arrays: dict[str, object], read_only: tuple[str, ...] = ()) -> None:
    """Arrays a kernel updates in place, checked together: each a float32/float64
    numpy.ndarray, all of one dtype and one shape, C-contiguous, aligned, in native byte order,
    writeable (except those named in read_only), no two overlapping. Never copied: the caller's
    arrays are the ones that must change."""
    given = {name: ndarray(name, a) for name, a in arrays.items()}
    first_name, first = next(iter(given.items()))
    for name, a in given.items():
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be float32 or float64 in native byte order, got {a.dtype}")
        if a.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but {first_name} has {first.dtype}; "
                            "all must have one dtype")
        if a.shape != first.shape:
            raise ValueError(f"{name} has shape {a.shape} but {first_name} has {first.shape}; "
                             "all must have one shape")
        if not (a.flags.c_contiguous and a.flags.aligned):
            raise ValueError(f"{name} must be C-contiguous and aligned (it is used in place, "
                             "never copied)")
        if name not in read_only and not a.flags.writeable:
            raise ValueError(f"{name} is read-only")
    names = list(given)
    for i, a_name in enumerate(names):
        for b_name in names[i + 1:]:
            # exact for C-contiguous arrays: each spans one interval of memory
            if given[a_name].size and np.may_share_memory(given[a_name], given[b_name]):
                raise ValueError(f"{a_name} and {b_name} overlap; they must be separate buffers")


def real_range(name: str, value: object, lo: float = -np.inf, hi: float = np.inf, *,
               lo_open: bool = False, hi_open: bool = False) -> float:
    """A real number between lo and hi, each end closed unless lo_open / hi_open (NaN refused;
    an infinite end that is open refuses that infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    above = v > lo if lo_open else v >= lo
    below = v < hi if hi_open else v <= hi
    if not (above and below):  # also catches NaN
        if hi == np.inf and hi_open:
            want = f"{'>' if lo_open else '>='} {lo} and finite"
        else:
            want = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be {want}, got {value}")
    return v


def real_number(name: str, value: object) -> float:
    """Any real number, NaN and infinities included (a factor that data may carry)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def boolean(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)
