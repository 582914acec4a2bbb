"""Numba's thread count follows fasttrain's, per call (numba.set_num_threads is per thread too)."""
import numba

from fasttrain.threads import get_num_threads


def use_library_threads() -> None:
    """Call before each parallel Numba kernel, on the thread that launches it."""
    numba.set_num_threads(min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))
