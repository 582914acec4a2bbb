# blas.pxd: the BLAS GEMMs that linear.pyx and linear_crossentropy.pyx hand to their C kernels.
# scipy.linalg.cython_blas exports sgemm/dgemm as PyCapsules holding C function pointers, so
# cimporting this loads scipy's OpenBLAS without linking any BLAS at build time (scipy is a
# run-time dependency only).
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer


cdef inline void *blas_function(str name) except NULL:
    """The C address of scipy.linalg.cython_blas.<name>, after checking that its signature is
    the LP64 one (32-bit int sizes) that csrc/fasttrain.h declares."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[name]
    cdef const char *signature = PyCapsule_GetName(capsule)
    if not signature.decode().startswith("void (char *, char *, int *, int *, int *, "):
        raise ImportError(f"scipy.linalg.cython_blas.{name} has an unexpected signature "
                          f"{signature.decode()!r}; fasttrain expects 32-bit int sizes")
    return PyCapsule_GetPointer(capsule, signature)
