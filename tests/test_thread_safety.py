"""Thread safety: every kernel, called at once from several Python threads on separate arrays
(the GIL released inside the C and Numba kernels), gives the same bits as serial calls. Each
thread repeats its call so that the calls overlap; the thread count of the kernels themselves
stays as set (their OpenMP teams are per calling thread)."""
import threading

import numpy as np
import pytest

from fasttrain.kernels import KERNELS
from kernel_cases import make_case

THREADS, REPEATS = 6, 4


def results(case, result):
    """What a call produced: the arrays it wrote and the number it returned, if any."""
    out = {name: case.arrays[name].copy() for name in case.written}
    if case.kernel == "softmax_cross_entropy":
        out["loss"] = np.asarray(result[0])
    elif case.kernel == "sum_of_squares":
        out["result"] = np.asarray(result)
    return out


@pytest.mark.parametrize("kernel", KERNELS)
def test_concurrent_calls_match_serial_calls(kernel, backend):
    # different sizes per thread, large enough that a call takes a while (and, for the C
    # kernels, opens an OpenMP region)
    cases = [make_case(kernel, np.random.default_rng(i), np.float32, 200 + 17 * i, 129 + i, 33 + i)
             for i in range(THREADS)]
    serial = []
    for case in cases:
        fresh = case.copy()
        serial.append(results(fresh, fresh.run(backend)))
    got = [None] * THREADS
    errors = []
    start = threading.Barrier(THREADS)

    def work(i):
        try:
            start.wait()
            for _ in range(REPEATS):
                fresh = cases[i].copy()  # in-place kernels must start from the same state
                got[i] = results(fresh, fresh.run(backend))
        except BaseException as e:  # noqa: BLE001 - reported below, with the thread's index
            errors.append((i, e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(THREADS):
        for name, want in serial[i].items():
            assert np.array_equal(got[i][name], want, equal_nan=True), \
                f"{kernel} on {backend}, thread {i}: {name} differs from the serial call"
