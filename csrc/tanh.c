// tanh.c: the tanh activation, forward and backward, elementwise over n values.
//
// Matches src/fasttrain/kernels/ref/tanh.py and torch.tanh with its autograd gradient:
//   forward:  y = tanh(x)
//   backward: dx = dy * (1 - y^2)   from the forward's output y, as torch's tanh_backward does
// float32 uses ft_vtanhf (vmath.h, 2 ulp, vectorised inline); float64 libm's tanh.
// In place is allowed (y may be x; dx may be dy): each element is read before it is written.
// Each thread takes contiguous blocks (static schedule); the result does not depend on the
// thread count.
#include "fasttrain.h"
#include "real.h"

#define BLOCK 8192
#define PARALLEL_MIN (1 << 15)

FT_CLONES static void FT_FN(tanh_forward_block)(real *y, const real *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = TANH(x[i]);
}

FT_CLONES static void FT_FN(tanh_backward_block)(real *dx, const real *y, const real *dy,
                                                 int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1 - y[i] * y[i]);
}

void FT_FN(ft_tanh_forward)(real *y, const real *x, int64_t n, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (n >= PARALLEL_MIN)
    for (int64_t b = 0; b < n; b += BLOCK)
        FT_FN(tanh_forward_block)(y + b, x + b, n - b < BLOCK ? n - b : BLOCK);
}

void FT_FN(ft_tanh_backward)(real *dx, const real *y, const real *dy, int64_t n, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (n >= PARALLEL_MIN)
    for (int64_t b = 0; b < n; b += BLOCK)
        FT_FN(tanh_backward_block)(dx + b, y + b, dy + b, n - b < BLOCK ? n - b : BLOCK);
}
