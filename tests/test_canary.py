"""Out-of-bounds writes, caught without a sanitizer: every array of a call (outputs and inputs)
lives inside a larger buffer whose elements before and after it hold a canary pattern. After
the call, on every backend, the canaries are unchanged, the inputs are unchanged, and the
outputs hold the same bits as those of an unguarded call.

This runs on the shipped build, so it also checks the AVX2 / AVX-512 function clones that the
sanitizer build (.ci/sanitize) compiles out; the sizes straddle their vector widths (8 and 16
floats, 4 and 8 doubles) so that the remainder loops run.
"""
import numpy as np
import pytest

from fasttrain.kernels import KERNELS
from kernel_cases import make_case

GUARD = 67  # elements of canary on each side: more than one AVX-512 vector, odd for misalignment
CANARY_BYTE = 0xA5  # as float32 -2.9e-16, as float64 -2.4e-106: neither 0, NaN nor a typical value


def guarded(a: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of `a` placed `offset` elements after the start of a canary-filled buffer with
    GUARD more elements after it; returns (the copy, the whole buffer)."""
    whole = np.empty(offset + a.size + GUARD, dtype=a.dtype)
    whole.view(np.uint8)[...] = CANARY_BYTE
    inner = whole[offset:offset + a.size].reshape(a.shape)
    inner[...] = a
    return inner, whole


def check_canaries(name: str, whole: np.ndarray, offset: int, size: int) -> None:
    raw = whole.view(np.uint8)
    item = whole.dtype.itemsize
    before, after = raw[:offset * item], raw[(offset + size) * item:]
    for part, where in ((before, "before"), (after, "after")):
        bad = np.flatnonzero(part != CANARY_BYTE)
        if bad.size:
            first = bad[0] // item - (offset if where == "before" else 0)
            raise AssertionError(f"{name}: {bad.size} canary bytes {where} the array were "
                                 f"overwritten (first at element {first} of that guard)")


SIZES = [(1, 1, 1), (3, 5, 2), (7, 17, 9), (16, 33, 31), (31, 8, 16)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_no_write_outside_the_arrays(kernel, dtype, backend, threads):
    for i, (n, m, k) in enumerate(SIZES):
        for accumulate in ((False, True) if kernel.endswith("backward") and "gelu" not in kernel
                           and "tanh" not in kernel else (None,)):
            extra = {} if accumulate is None else {"accumulate": accumulate}
            case = make_case(kernel, np.random.default_rng(i), dtype, n, m, k, **extra)
            plain = case.copy()
            expected = plain.run(backend)
            arrays, wholes = {}, {}
            for j, (name, a) in enumerate(case.arrays.items()):
                offset = GUARD + (j % 3)  # element offsets 0..2 past the guard: varied alignment
                arrays[name], wholes[name] = guarded(a, offset)
            result = case.run(backend, arrays)
            what = f"{kernel} {np.dtype(dtype)} {(n, m, k)} accumulate={accumulate}"
            for j, (name, a) in enumerate(case.arrays.items()):
                check_canaries(f"{what}: {name}", wholes[name], GUARD + (j % 3), a.size)
                if name not in case.written:
                    assert np.array_equal(arrays[name], a, equal_nan=True), f"{what}: input {name} changed"
                else:
                    assert np.array_equal(arrays[name], plain.arrays[name], equal_nan=True), \
                        f"{what}: {name} differs from an unguarded call's"
            if kernel in ("softmax_cross_entropy", "sum_of_squares"):
                got = result[0] if kernel == "softmax_cross_entropy" else result
                want = expected[0] if kernel == "softmax_cross_entropy" else expected
                assert np.array_equal(got, want, equal_nan=True), f"{what}: result {got} != {want}"
