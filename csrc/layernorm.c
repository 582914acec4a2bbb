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
// Precision. Every sweep runs in `real` (32 float lanes in float32, twice the lanes of double
// and no conversions), and only the row totals in double. The forward's statistics (row_stats
// below): a sum of x - x_0, then the corrected two-pass sums of x - m0 and its square, so that
// the float sums' rounding is relative to the row's spread even when |mean| >> std; a row whose
// float sums overflow (|x - mean| > 1.8e19) is summed again in double. y takes the mean as two
// reals, m_hi + m_lo, so that x - m_hi - m_lo keeps the digits of x - mean. The backward's row
// sums run in 32 float lanes and its dweight/dbias chunk partials (64 rows) in float, their sum
// over chunks in double. Measured against the float64 reference in float32 (256 rows of C =
// 256, 768 and 4099, N(0, 2) and N(1e4, 2)): y and rstd within 1.3e-7 of their largest value
// (the statistics summed in double before: 1e-7), dx 1e-7, dweight and dbias 2e-7; the target
// is 1e-5. The backward reads the mean and rstd saved by the forward, rounded to `real` as
// stored, as torch's does. The square root is libm's double sqrt, not real.h's SQRT.
//
// In place: y may be x, and dx may be dy. Each element of x (of dy) is read before the same
// element of y (of dx) is written, in the last sweep over its row; no other sweep writes.
//
// Threads, and why the bits do not depend on them: each row is one thread's, start to end. dw and
// db are sums over rows: rows are taken in chunks of CHUNK_ROWS (a constant), each chunk's rows
// are added in order into the chunk's own partial sums, and each column then adds the chunk
// partials in chunk order. A thread count only decides who computes which chunk. The partials,
// (N / CHUNK_ROWS rounded up, 2, C) reals (1/32 of x's bytes), are malloc'd here per call
// (FT_ERR_NOMEM if that fails, nothing written then), so the C API needs no scratch argument
// whose size the caller must know.
//
// Measured (float32, 2 threads, `fasttrain bench --kernels layernorm`, medians of 5 interleaved
// rounds, 2026-11-30 21:29 UTC, the 2-core AVX2 machine quiet, bandwidth probe 42 GB/s): forward
// + backward at (N, C) = (8192, 768) 1.89 + 2.65 ms, 61% of the probe for the minimum traffic,
// at (2048, 256) 196 + 246 us including the Python fronts. PyTorch 2.13's F.layer_norm took
// 2.2 + 4.05 ms and 170 + 322 us: its forward (moments in one Welford sweep, in float, then y)
// is level with this one's three sweeps (1.19x at 8192 x 768, 0.79x at 2048 x 256, where the
// rows fit in cache and a call's fixed costs tell), its backward 1.5x slower. The float32
// moments (row_stats) made the forward 1.06x (2048 x 256) to 1.2x (128 x 768 and 8192 x 768)
// faster than double sums, a C driver alternating both builds in one process. A single-thread
// microbenchmark of the C alone, in L2 at 128 x 768: forward 0.30, backward 0.35 ns per element.
//
// Not here: argument validation (the Python front does it before any memory is touched), a
// residual added before the normalization (a fused "residual + LayerNorm" would save one pass
// over the (N,C) sum: by estimate 0.1-0.2% of the small GPT step, whose rows fit in cache;
// not built), RMSNorm, normalization over more than the last axis.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fasttrain.h"
#include "real.h"

#define CHUNK_ROWS 64         // rows per dw/db partial sum: fixed, so the bits are too
#define COL_BLOCK 256         // columns per task of the final reduction of the partials
#define PARALLEL_MIN (1 << 15)  // elements below which a team costs more than it saves

// Row sums run in independent partial sums (four AVX2 or two AVX-512 vectors), added pairwise in
// a fixed order at the end: one accumulator waits on the latency of each add (or FMA) in turn.
// With that and every element in double, the first version of this file was compute-bound at a
// third of memory speed.
#define DLANES 16                        // doubles: the forward's fallback sweeps
#if defined(FT_F32)  // reals: the backward's row sums, 128 bytes of them
#define LANES 32
#define LANES_IS_32 1
#else
#define LANES 16
#define LANES_IS_32 0
#endif

// The lanes are summed by loops of constant trip counts, which GCC keeps in registers (a
// halving loop with a variable bound went through the stack), and they are never zeroed: the
// first block of a row starts them (`first`, a constant once inlined), where `= {0}` became a
// `rep stos`, 10% of the forward's time on a 256-wide row and 16% of the backward's. The last
// C % lanes elements go to one scalar sum of their own: a variable lane index would put the
// lanes in memory.
static inline double dlanes_total(double acc[DLANES]) {  // pairwise, in a fixed order
    for (int k = 0; k < 8; k++) acc[k] += acc[k + 8];
    for (int k = 0; k < 4; k++) acc[k] += acc[k + 4];
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

static inline real FT_FN(lanes_total)(real acc[LANES]) {  // pairwise, in a fixed order
#if LANES_IS_32
    for (int k = 0; k < 16; k++) acc[k] += acc[k + 16];
#endif
    for (int k = 0; k < 8; k++) acc[k] += acc[k + 8];
    for (int k = 0; k < 4; k++) acc[k] += acc[k + 4];
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

// acc (DLANES) = (first) or += x[k] - shift, or its square (squared), in double
static inline void FT_FN(sum_block)(double acc[DLANES], const real *x, double shift, int squared,
                                    int first) {
#pragma omp simd
    for (int k = 0; k < DLANES; k++) {
        const double d = (double)x[k] - shift;
        acc[k] = (first ? 0 : acc[k]) + (squared ? d * d : d);
    }
}

// sum_j (x_j - shift) (or its square) over a row x (C,), in double
static inline double FT_FN(row_sum)(const real *x, int64_t C, double shift, int squared) {
    double acc[DLANES], total = 0, tail = 0;
    int64_t j = 0;
    if (C >= DLANES) {
        FT_FN(sum_block)(acc, x, shift, squared, 1);
        for (j = DLANES; j + DLANES <= C; j += DLANES)
            FT_FN(sum_block)(acc, x + j, shift, squared, 0);
        total = dlanes_total(acc);
    }
    for (; j < C; j++) {
        const double d = (double)x[j] - shift;
        tail += squared ? d * d : d;
    }
    return total + tail;
}

// The forward's moments in `real` lanes. For one block of LANES elements, with
// d_k = (x_k - s_hi) - s_lo:  sd (LANES) = (first) or += d,  and if squares  sq (LANES) = or += d^2
static inline void FT_FN(moment_block)(real sd[LANES], real sq[LANES], const real *x, real s_hi,
                                       real s_lo, int squares, int first) {
#pragma omp simd
    for (int k = 0; k < LANES; k++) {
        const real d = (x[k] - s_hi) - s_lo;
        sd[k] = (first ? 0 : sd[k]) + d;
        if (squares) sq[k] = (first ? 0 : sq[k]) + d * d;
    }
}

// *sd = sum_j d_j and (if squares) *sq = sum_j d_j^2 over a row x (C,), d_j = (x_j - s_hi) - s_lo,
// summed in LANES `real` lanes, their pairwise totals returned in double.
// (always_inline here and below: GCC left these out of line, compiled once for baseline x86-64,
// without the AVX2 of the clone that calls them, and the forward was slower than in double.)
static inline __attribute__((always_inline)) void FT_FN(row_moments)(
        double *sd, double *sq, const real *x, int64_t C, real s_hi, real s_lo, int squares) {
    real a[LANES], q[LANES], ta = 0, tq = 0;
    double A = 0, Q = 0;
    int64_t j = 0;
    if (C >= LANES) {
        FT_FN(moment_block)(a, q, x, s_hi, s_lo, squares, 1);
        for (j = LANES; j + LANES <= C; j += LANES)
            FT_FN(moment_block)(a, q, x + j, s_hi, s_lo, squares, 0);
        A = (double)FT_FN(lanes_total)(a);
        if (squares) Q = (double)FT_FN(lanes_total)(q);
    }
    for (; j < C; j++) {
        const real d = (x[j] - s_hi) - s_lo;
        ta += d;
        tq += d * d;
    }
    *sd = A + (double)ta;
    *sq = squares ? Q + (double)tq : 0;
}

// A row's mean (*m) and biased variance (returned), in two sweeps of `real` arithmetic (twice
// the lanes of double and no conversions), accurate when |mean| >> std:
//   sweep 1 sums d = x - x_0: shifted by one of the row's own values, the sum's rounding is
//     relative to the row's spread, not to |mean|; m0 = x_0 + sum d / C.
//   sweep 2 sums e = x - m0 and e^2, m0 taken as two reals m0_hi + m0_lo so that x - m0 keeps its
//     digits; then mean = m0 + sum e / C and var = sum e^2 / C - (sum e / C)^2: the corrected
//     two-pass algorithm (Chan, Golub and LeVeque), the correction removing what is left of m0's
//     rounding (sum e is ~0, so the subtraction cancels nothing).
// A row whose `real` sums are not finite takes two sweeps in double instead, as the float64
// reference does: (x - m)^2 overflows float for |x - mean| > 1.8e19 and x - x_0 for |x| > 1.7e38;
// a row with NaN or inf takes them too and comes out NaN, as before.
static inline __attribute__((always_inline)) double FT_FN(row_stats)(double *m, const real *x,
                                                                   int64_t C) {
    double s, unused, se, se2;
    FT_FN(row_moments)(&s, &unused, x, C, x[0], 0, 0);
    const double m0 = (double)x[0] + s / (double)C;
    const real m0_hi = (real)m0, m0_lo = (real)(m0 - (double)m0_hi);
    FT_FN(row_moments)(&se, &se2, x, C, m0_hi, m0_lo, 1);
    if (isfinite(s) && isfinite(se) && isfinite(se2)) {
        const double e = se / (double)C, var = se2 / (double)C - e * e;
        *m = m0 + e;
        return var > 0 ? var : 0;
    }
    *m = FT_FN(row_sum)(x, C, 0, 0) / (double)C;
    return FT_FN(row_sum)(x, C, *m, 1) / (double)C;  // the row still in cache: no cancellation
}

// One row forward: y (C,) =, *mean =, *rstd =. y may be x.
FT_CLONES static void FT_FN(ln_forward_row)(real *y, real *mean, real *rstd, const real *x,
                                            const real *restrict w, const real *restrict b,
                                            int64_t C, double eps) {
    double m;
    const double r = 1.0 / sqrt(FT_FN(row_stats)(&m, x, C) + eps);
    // Last sweep in `real`: the mean as two reals, m_hi + m_lo, so that x - m keeps its digits
    // when |mean| >> std (x - m_hi loses none of them; m_lo then carries the rest of the mean).
    const real m_hi = (real)m, m_lo = (real)(m - (double)m_hi), rr = (real)r;
#pragma omp simd
    for (int64_t j = 0; j < C; j++)  // reads x[j] before it writes y[j]: y may be x
        y[j] = ((x[j] - m_hi) - m_lo) * rr * w[j] + b[j];
    *mean = m_hi;
    *rstd = rr;
}

// One block of LANES elements of a backward row: sg, sgx (LANES) = (first) or += g and g xhat;
// dwp, dbp (LANES) += dy xhat and dy
static inline void FT_FN(backward_block)(real sg[LANES], real sgx[LANES], real *restrict dwp,
                                         real *restrict dbp, const real *x,
                                         const real *restrict w, const real *dy, real m, real r,
                                         int first) {
#pragma omp simd
    for (int k = 0; k < LANES; k++) {
        const real xh = (x[k] - m) * r, d = dy[k], g = d * w[k];
        sg[k] = (first ? 0 : sg[k]) + g;
        sgx[k] = (first ? 0 : sgx[k]) + g * xh;
        dwp[k] += d * xh;
        dbp[k] += d;
    }
}

// One row backward: dx (C,) =, dwp and dbp (C,) += this row's dy * xhat and dy. dx may be dy.
FT_CLONES static void FT_FN(ln_backward_row)(real *dx, real *restrict dwp, real *restrict dbp,
                                             const real *x, const real *restrict w, real m,
                                             real r, const real *dy, int64_t C) {
    real sg[LANES], sgx[LANES], a = 0, c = 0;  // sum_j g_j, sum_j g_j xhat_j
    int64_t j = 0;
    if (C >= LANES) {
        FT_FN(backward_block)(sg, sgx, dwp, dbp, x, w, dy, m, r, 1);
        for (j = LANES; j + LANES <= C; j += LANES)
            FT_FN(backward_block)(sg, sgx, dwp + j, dbp + j, x + j, w + j, dy + j, m, r, 0);
        a = FT_FN(lanes_total)(sg);
        c = FT_FN(lanes_total)(sgx);
    }
    real tg = 0, tgx = 0;
    for (; j < C; j++) {
        const real xh = (x[j] - m) * r, d = dy[j], g = d * w[j];
        tg += g;
        tgx += g * xh;
        dwp[j] += d * xh;
        dbp[j] += d;
    }
    a = (a + tg) / (real)C;
    c = (c + tgx) / (real)C;
#pragma omp simd
    for (j = 0; j < C; j++) {  // reads dy[j] before it writes dx[j]: dx may be dy
        const real xh = (x[j] - m) * r, g = dy[j] * w[j];
        dx[j] = r * (g - a - xh * c);
    }
}

// out (n,) = or += the sum of the chunk partials src[k * stride + j], k = 0..nchunks-1 in order,
// in double.
FT_CLONES static void FT_FN(ln_reduce_cols)(real *restrict out, const real *restrict src,
                                            int64_t n, int64_t nchunks, int64_t stride,
                                            int accumulate) {
    double acc[COL_BLOCK];
    for (int64_t j = 0; j < n; j++) acc[j] = accumulate ? (double)out[j] : 0.0;
    for (int64_t k = 0; k < nchunks; k++) {
        const real *p = src + k * stride;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) acc[j] += (double)p[j];
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
    real *part = NULL;  // (nchunks, 2, C): chunk k's dw partials, then its db partials
    if (nchunks > 0) {
        part = malloc((size_t)nchunks * 2 * (size_t)C * sizeof(real));
        if (!part) return FT_ERR_NOMEM;
    }
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && N * C >= PARALLEL_MIN)
    {
#pragma omp for schedule(static)
        for (int64_t k = 0; k < nchunks; k++) {
            real *dwp = part + k * 2 * C, *dbp = dwp + C;
            memset(dwp, 0, 2 * (size_t)C * sizeof(real));
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
