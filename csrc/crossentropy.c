// crossentropy.c: softmax cross-entropy, loss and dlogits in one pass over each row.
//
// Matches src/fasttrain/kernels/ref/crossentropy.py (the spec) and
// torch.nn.functional.cross_entropy(logits, targets, ignore_index=, reduction=, label_smoothing=),
// with dlogits its autograd gradient. For a row x (V,) with target t and eps = label_smoothing:
//   m = max_j x_j,   s = sum_j exp(x_j - m),   lse = m + log(s),   p_j = exp(x_j - m) / s
//   loss = (1 - eps) * (lse - x_t) + eps * (lse - mean_j x_j)
//   dlogits_j = scale * (p_j - (1 - eps) * [j == t] - eps / V)
// with scale = 1 / (number of non-ignored rows) for the mean, 1 otherwise.
//
// Three sweeps over a row: max (and the sum, for label smoothing); exp into dlogits and their sum;
// rescale dlogits in place. Only the first reads logits from DRAM: a row of even V = 50304 floats
// (197 KiB) is still in L2 for the second and third, so memory sees one read of the logits and
// one write of the gradient, 8 bytes per logit in float32. dlogits may be the logits buffer
// (out=logits in Python): sweep 2 reads x_j before it writes the same d_j, and x_t is read first.
// NaN and +-Inf propagate as in PyTorch: a NaN or +Inf logit makes its row's loss and gradient NaN.
//
// Not here: argument validation (the Python front does it before any memory is touched), class
// weights, probabilities as targets.
#include <math.h>
#include <string.h>
#include "fasttrain.h"
#include "real.h"
#include "crossentropy.h"

// Row sums (s, and sum(x) for label smoothing) are taken a block of CE_SUM_BLOCK elements at a
// time: each block's sum in `real` (vectorised as before), the blocks' sums in double. A float32
// sum of V terms in one accumulator loses accuracy with V: 6.7e-5 relative at V = 1e6 in the
// non-vectorised build, 1.8e-5 with AVX2's 8 lanes, and every p_j and the loss inherit it. In
// blocks, the error grows with the block's length and not with V (4e-8 at V = 1e6,
// tests/test_crossentropy.py), at no measurable cost: one double add per 256 exponentials.
#define CE_SUM_BLOCK 256

// One row: writes d (V,) and returns the row's loss. `scale` multiplies the gradient.
FT_CLONES static real FT_FN(ce_row)(real *d, const real *x, int64_t V, int64_t t, real eps,
                                    real scale) {
    // sweep 1: m = max(x) (and sum(x) for the smoothing term, in blocks as s below)
    real m = -INFINITY;
    double sum_x = 0;
    if (eps > 0) {
        for (int64_t lo = 0; lo < V; lo += CE_SUM_BLOCK) {
            const int64_t hi = V - lo < CE_SUM_BLOCK ? V : lo + CE_SUM_BLOCK;
            real block = 0;
#pragma omp simd reduction(max : m) reduction(+ : block)
            for (int64_t j = lo; j < hi; j++) {
                m = x[j] > m ? x[j] : m;
                block += x[j];
            }
            sum_x += block;
        }
    } else {
#pragma omp simd reduction(max : m)
        for (int64_t j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
    }
    const real x_t = x[t];  // before d, which may be x, is overwritten

    // sweep 2: d_j = exp(x_j - m), s = sum_j d_j, summed a block at a time (see CE_SUM_BLOCK)
    double s = 0;
    for (int64_t lo = 0; lo < V; lo += CE_SUM_BLOCK) {
        const int64_t hi = V - lo < CE_SUM_BLOCK ? V : lo + CE_SUM_BLOCK;
        real block = 0;
#pragma omp simd reduction(+ : block)
        for (int64_t j = lo; j < hi; j++) {
            const real e = EXP(x[j] - m);
            d[j] = e;
            block += e;
        }
        s += block;
    }

    // sweep 3: d_j = scale * (d_j / s - eps / V), then the target's -scale * (1 - eps)
    const real a = (real)(scale / s), b = scale * eps / (real)V;
#pragma omp simd
    for (int64_t j = 0; j < V; j++) d[j] = d[j] * a - b;
    d[t] -= scale * (1 - eps);

    const real lse = m + (real)log(s);
    real loss = (1 - eps) * (lse - x_t);
    if (eps > 0) loss += eps * (lse - (real)(sum_x / (double)V));
    return loss;
}

real FT_FN(ft_internal_ce_scale)(int64_t n_valid, int reduction) {
    // PyTorch divides the mean by the count of non-ignored rows; with none, every row's gradient
    // is zero and the loss is 0/0 = NaN (torch gives the same).
    if (reduction != FT_REDUCTION_MEAN) return 1;
    return n_valid > 0 ? (real)(1.0 / (double)n_valid) : 0;
}

real FT_FN(ft_internal_ce_row)(real *d, const real *x, int64_t V, int64_t t,
                               int64_t ignore_index, real eps, real scale) {
    if (t == ignore_index) {
        memset(d, 0, (size_t)V * sizeof(real));
        return 0;
    }
    return FT_FN(ce_row)(d, x, V, t, eps, scale);
}

void FT_FN(ft_internal_ce_rows)(real *dlogits, real *losses, const real *logits,
                                const int64_t *targets, int64_t N, int64_t V,
                                int64_t ignore_index, real eps, real scale, int nthreads) {
    // Rows are independent and each is computed by one thread, start to end: the result is the
    // same bits for any thread count.
#pragma omp parallel for schedule(static) num_threads(nthreads) \
    if (nthreads > 1 && N * V >= FT_CE_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        losses[i] = FT_FN(ft_internal_ce_row)(dlogits + i * V, logits + i * V, V, targets[i],
                                              ignore_index, eps, scale);
    }
}

double FT_FN(ft_internal_ce_total)(const real *losses, int64_t N, int64_t n_valid,
                                   int reduction) {
    if (reduction == FT_REDUCTION_NONE) return 0;
    double total = 0;  // serial, in row order: deterministic
    for (int64_t i = 0; i < N; i++) total += losses[i];
    if (reduction == FT_REDUCTION_SUM) return total;
    return n_valid > 0 ? total / (double)n_valid : NAN;
}

double FT_FN(ft_crossentropy)(real *dlogits, real *losses, const real *logits,
                              const int64_t *targets, int64_t N, int64_t V, int64_t ignore_index,
                              int reduction, double label_smoothing, int nthreads) {
    int64_t n_valid = 0;
    for (int64_t i = 0; i < N; i++) n_valid += targets[i] != ignore_index;
    FT_FN(ft_internal_ce_rows)(dlogits, losses, logits, targets, N, V, ignore_index,
                               (real)label_smoothing, FT_FN(ft_internal_ce_scale)(n_valid, reduction),
                               nthreads);
    return FT_FN(ft_internal_ce_total)(losses, N, n_valid, reduction);
}
