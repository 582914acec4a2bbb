# elementwise.pxd: the one wrapper every elementwise C kernel goes through (tanh.pyx, gelu.pyx).
# Arrays of any shape are handled as flat C-contiguous buffers; the element counts are checked
# again here, so no call can touch memory out of bounds; the GIL is released during the kernel.
from libc.stdint cimport int64_t

ctypedef void (*unary_f32_t)(float *y, const float *x, int64_t n, int nthreads) noexcept nogil
ctypedef void (*unary_f64_t)(double *y, const double *x, int64_t n, int nthreads) noexcept nogil
ctypedef void (*binary_f32_t)(float *out, const float *a, const float *b, int64_t n,
                              int nthreads) noexcept nogil
ctypedef void (*binary_f64_t)(double *out, const double *a, const double *b, int64_t n,
                              int nthreads) noexcept nogil


cdef inline object unary(str name, unary_f32_t f32, unary_f64_t f64, out, x, int nthreads):
    # out = f(x), elementwise; out may be x
    cdef float[::1] y4
    cdef const float[::1] x4
    cdef double[::1] y8
    cdef const double[::1] x8
    cdef int64_t n = x.size
    if out.size != n or out.dtype != x.dtype:
        raise ValueError(f"{name} (C backend): sizes or dtypes do not match")
    if n == 0:
        return out
    if x.dtype.itemsize == 4:
        y4, x4 = out.reshape(-1), x.reshape(-1)
        with nogil:
            f32(&y4[0], &x4[0], n, nthreads)
    else:
        y8, x8 = out.reshape(-1), x.reshape(-1)
        with nogil:
            f64(&y8[0], &x8[0], n, nthreads)
    return out


cdef inline object binary(str name, binary_f32_t f32, binary_f64_t f64, out, a, b, int nthreads):
    # out = f(a, b), elementwise; out may be a or b
    cdef float[::1] o4
    cdef const float[::1] a4, b4
    cdef double[::1] o8
    cdef const double[::1] a8, b8
    cdef int64_t n = a.size
    if out.size != n or b.size != n or out.dtype != a.dtype or b.dtype != a.dtype:
        raise ValueError(f"{name} (C backend): sizes or dtypes do not match")
    if n == 0:
        return out
    if a.dtype.itemsize == 4:
        o4, a4, b4 = out.reshape(-1), a.reshape(-1), b.reshape(-1)
        with nogil:
            f32(&o4[0], &a4[0], &b4[0], n, nthreads)
    else:
        o8, a8, b8 = out.reshape(-1), a.reshape(-1), b.reshape(-1)
        with nogil:
            f64(&o8[0], &a8[0], &b8[0], n, nthreads)
    return out
