# cython: language_level=3, boundscheck=False, wraparound=False
"""What the C library was built with and what this CPU runs (for `fasttrain info`), and the
in-place streaming probe that `fasttrain bench` divides bandwidth-bound kernels by."""
from libc.stdint cimport int64_t

from csrc cimport (ft_openmp_park_team, ft_openmp_version, ft_simd_level, ft_stream_scale_f32,
                   ft_vector_exp)


def simd_level():
    """The function-clone variant this CPU runs: 'avx512', 'avx2' or 'baseline'."""
    return ft_simd_level().decode()


def openmp_version():
    """The _OPENMP date (yyyymm) the library was built with, 0 if built without OpenMP."""
    return ft_openmp_version()


def vector_exp():
    """True if float64 exp is vectorised through glibc's libmvec (float32 exp always is)."""
    return bool(ft_vector_exp())


def stream_scale(float[::1] a, float s, int nthreads):
    """a *= s in place, in parallel: reads and writes every byte of a once."""
    if a.shape[0] == 0:
        return
    with nogil:
        ft_stream_scale_f32(&a[0], a.shape[0], s, nthreads)


def park_team(int nthreads):
    """Run one empty OpenMP region of nthreads on this thread: libgomp keeps its nthreads - 1
    workers (asleep) while this thread lives (fasttrain.threads.shorten_libgomp_spin)."""
    with nogil:
        ft_openmp_park_team(nthreads)
