// gelu.c: the GELU activation in its tanh form, forward and backward, elementwise over n values.
//
// Matches src/fasttrain/kernels/ref/gelu.py and torch.nn.functional.gelu(x, approximate="tanh")
// (the form GPT-2 uses; Hendrycks & Gimpel 2016) with its autograd gradient:
//   u = sqrt(2/pi) * (x + 0.044715 x^3),   t = tanh(u)
//   forward:  y  = 0.5 x (1 + t)
//   backward: dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))
// Computed as 0.5 (1 + t) = s = 1 / (1 + exp(-2u)) and 1 - t^2 = 4 s (1 - s): the same function
// without the cancellation of 1 + tanh(u) as tanh(u) -> -1, which in float32 leaves no correct
// digits in y or dx once x < -4; and one exp is cheaper than a tanh. The backward recomputes s
// from x rather than storing it: one read of x is cheaper than a third (N, C) buffer.
// In place is allowed (y may be x; dx may be dy). The result does not depend on thread count.
#include "fasttrain.h"
#include "real.h"

#define BLOCK 8192
#define PARALLEL_MIN (1 << 15)
#define GELU_SCALE ((real)0.7978845608028654)  // sqrt(2 / pi)
#define GELU_CUBE ((real)0.044715)

FT_CLONES static void FT_FN(gelu_forward_block)(real *y, const real *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const real xi = x[i];
        const real s = 1 / (1 + EXP(-2 * GELU_SCALE * (xi + GELU_CUBE * xi * xi * xi)));
        y[i] = xi * s;
    }
}

FT_CLONES static void FT_FN(gelu_backward_block)(real *dx, const real *x, const real *dy,
                                                 int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const real xi = x[i];
        const real s = 1 / (1 + EXP(-2 * GELU_SCALE * (xi + GELU_CUBE * xi * xi * xi)));
        const real du = GELU_SCALE * (1 + 3 * GELU_CUBE * xi * xi);  // du/dx
        dx[i] = dy[i] * (s + 2 * xi * s * (1 - s) * du);
    }
}

void FT_FN(ft_gelu_forward)(real *y, const real *x, int64_t n, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (n >= PARALLEL_MIN)
    for (int64_t b = 0; b < n; b += BLOCK)
        FT_FN(gelu_forward_block)(y + b, x + b, n - b < BLOCK ? n - b : BLOCK);
}

void FT_FN(ft_gelu_backward)(real *dx, const real *x, const real *dy, int64_t n, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (n >= PARALLEL_MIN)
    for (int64_t b = 0; b < n; b += BLOCK)
        FT_FN(gelu_backward_block)(dx + b, x + b, dy + b, n - b < BLOCK ? n - b : BLOCK);
}
