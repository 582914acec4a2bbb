// layernorm.c: layer normalization over the last axis (GPT-2's LayerNorm), forward and backward.
//
// Matches src/fasttrain/kernels/ref/layernorm.py (the spec) and
// torch.nn.functional.layer_norm(x, (C,), weight, bias, eps) with its autograd gradients; mean and
// rstd are the statistics torch.native_layer_norm and llm.c's layernorm_forward keep for the
// backward. x (N,C) is N rows of C channels; for one row:
//   mean   = sum_j x_j / C
//   rstd   = 1 / sqrt(sum_j (x_j - mean)^2 / C + eps)      (biased variance, as torch)
//   xhat_j = (x_j - mean) * rstd
//   forward:  y_j  = xhat_j * w_j + b_j
//   backward: g_j  = dy_j * w_j
//             dx_j = rstd * (g_j - mean_k g_k - xhat_j * mean_k (g_k xhat_k))
//             dw_j = sum over rows of dy_j xhat_j,   db_j = sum over rows of dy_j
// The variance is a second sweep over the row, which is still in L1/L2 after the first, not
// E[x^2] - E[x]^2: that difference cancels catastrophically when |mean| >> std (at mean 1e4,
// std 1 it leaves no correct digit in float32).
//
// Precision: the row sums and every element's arithmetic run in double in both builds, and each
// result is rounded to `real` once. In float32 that keeps y within an ulp or two of a float64
// computation for any C (summing 4099 floats in float lanes loses ~1e-6 relative to the largest
// term), and it is free in practice: the kernel is bound by memory at the sizes of a model
// (benchmarks/bench_layernorm.py). The statistics are therefore computed with libm's double
// sqrt, not real.h's SQRT. The backward reads the mean and rstd saved by the forward, rounded to
// `real` as stored, as torch's does.
//
// In place: y may be x, and dx may be dy. Each element of x (of dy) is read before the same
// element of y (of dx) is written, in the last sweep over its row; no other sweep writes.
//
// Threads, and why the bits do not depend on them: each row is one thread's, start to end. dw and
// db are sums over rows: rows are taken in chunks of CHUNK_ROWS (a constant), each chunk's rows
// are added in order into the chunk's own partial sums (double), and each column then adds the
// chunk partials in chunk order. A thread count only decides who computes which chunk.
// The partials, (N / CHUNK_ROWS rounded up, 2, C) doubles (N*C/4 bytes: 1/16 of a float32 x),
// are malloc'd here per call (FT_ERR_NOMEM if that fails, nothing written then), so the C API
// needs no scratch argument whose size the caller must know.
//
// Not here: argument validation (the Python front does it before any memory is touched), a
// residual added before the normalization (a fused "residual + LayerNorm" would save one pass
// over the (N,C) sum; not built yet), RMSNorm, normalization over more than the last axis.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fasttrain.h"
#include "real.h"

#define CHUNK_ROWS 64         // rows per dw/db partial sum: fixed, so the bits are too
#define COL_BLOCK 256         // columns per task of the final reduction of the partials
#define PARALLEL_MIN (1 << 15)  // elements below which a team costs more than it saves

// One row forward: y (C,) =, *mean =, *rstd =. y may be x.
FT_CLONES static void FT_FN(ln_forward_row)(real *y, real *mean, real *rstd, const real *x,
                                            const real *restrict w, const real *restrict b,
                                            int64_t C, double eps) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; j++) s += (double)x[j];
    const double m = s / (double)C;
    double v = 0;  // second sweep, the row still in cache: no cancellation
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < C; j++) {
        const double d = (double)x[j] - m;
        v += d * d;
    }
    const double r = 1.0 / sqrt(v / (double)C + eps);
#pragma omp simd
    for (int64_t j = 0; j < C; j++)  // reads x[j] before it writes y[j]: y may be x
        y[j] = (real)(((double)x[j] - m) * r * (double)w[j] + (double)b[j]);
    *mean = (real)m;
    *rstd = (real)r;
}

// One row backward: dx (C,) =, dwp and dbp (C,) += this row's dy * xhat and dy. dx may be dy.
FT_CLONES static void FT_FN(ln_backward_row)(real *dx, double *restrict dwp,
                                             double *restrict dbp, const real *x,
                                             const real *restrict w, real mean, real rstd,
                                             const real *dy, int64_t C) {
    const double m = (double)mean, r = (double)rstd;
    double sg = 0, sgx = 0;  // sum_j g_j, sum_j g_j xhat_j
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t j = 0; j < C; j++) {
        const double xh = ((double)x[j] - m) * r, d = (double)dy[j], g = d * (double)w[j];
        sg += g;
        sgx += g * xh;
        dwp[j] += d * xh;
        dbp[j] += d;
    }
    const double a = sg / (double)C, c = sgx / (double)C;
#pragma omp simd
    for (int64_t j = 0; j < C; j++) {  // reads dy[j] before it writes dx[j]: dx may be dy
        const double xh = ((double)x[j] - m) * r, g = (double)dy[j] * (double)w[j];
        dx[j] = (real)(r * (g - a - xh * c));
    }
}

// out (n,) = or += the sum of the chunk partials src[k * stride + j], k = 0..nchunks-1 in order.
FT_CLONES static void FT_FN(ln_reduce_cols)(real *restrict out, const double *restrict src,
                                            int64_t n, int64_t nchunks, int64_t stride,
                                            int accumulate) {
    double acc[COL_BLOCK];
    for (int64_t j = 0; j < n; j++) acc[j] = accumulate ? (double)out[j] : 0.0;
    for (int64_t k = 0; k < nchunks; k++) {
        const double *p = src + k * stride;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) acc[j] += p[j];
    }
    for (int64_t j = 0; j < n; j++) out[j] = (real)acc[j];
}

void FT_FN(ft_layernorm_forward)(real *y, real *mean, real *rstd, const real *x,
                                 const real *weight, const real *bias, int64_t N, int64_t C,
                                 double eps, int nthreads) {
    // y (N,C) =  mean (N,) =  rstd (N,) =    x (N,C)  weight (C,)  bias (C,)
#pragma omp parallel for schedule(static) num_threads(nthreads) \
    if (nthreads > 1 && N * C >= PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++)
        FT_FN(ln_forward_row)(y + i * C, mean + i, rstd + i, x + i * C, weight, bias, C, eps);
}

int FT_FN(ft_layernorm_backward)(real *dx, real *dweight, real *dbias, const real *x,
                                 const real *weight, const real *mean, const real *rstd,
                                 const real *dy, int64_t N, int64_t C, int accumulate,
                                 int nthreads) {
    // dx (N,C) =  dweight (C,) = or +=  dbias (C,) = or +=
    // x (N,C)  weight (C,)  mean (N,)  rstd (N,)  dy (N,C)
    const int64_t nchunks = (N + CHUNK_ROWS - 1) / CHUNK_ROWS;
    double *part = NULL;  // (nchunks, 2, C): chunk k's dw partials, then its db partials
    if (nchunks > 0) {
        part = malloc((size_t)nchunks * 2 * (size_t)C * sizeof(double));
        if (!part) return FT_ERR_NOMEM;
    }
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && N * C >= PARALLEL_MIN)
    {
#pragma omp for schedule(static)
        for (int64_t k = 0; k < nchunks; k++) {
            double *dwp = part + k * 2 * C, *dbp = dwp + C;
            memset(dwp, 0, 2 * (size_t)C * sizeof(double));
            const int64_t i1 = N - k * CHUNK_ROWS < CHUNK_ROWS ? N : (k + 1) * CHUNK_ROWS;
            for (int64_t i = k * CHUNK_ROWS; i < i1; i++)
                FT_FN(ln_backward_row)(dx + i * C, dwp, dbp, x + i * C, weight, mean[i],
                                       rstd[i], dy + i * C, C);
        }
        // (the implied barrier above: every chunk's partials are written)
#pragma omp for schedule(static)
        for (int64_t j0 = 0; j0 < C; j0 += COL_BLOCK) {
            const int64_t n = C - j0 < COL_BLOCK ? C - j0 : COL_BLOCK;
            FT_FN(ln_reduce_cols)(dweight + j0, part ? part + j0 : NULL, n, nchunks, 2 * C,
                                  accumulate);
            FT_FN(ln_reduce_cols)(dbias + j0, part ? part + C + j0 : NULL, n, nchunks, 2 * C,
                                  accumulate);
        }
    }
    free(part);
    return 0;
}
