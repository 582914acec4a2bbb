// crossentropy.c: softmax cross-entropy, loss and dlogits in one pass over each row.
//
// Matches src/fasttrain/kernels/ref/crossentropy.py (the spec) and
// torch.nn.functional.cross_entropy(logits, targets, ignore_index=, reduction=, label_smoothing=),
// with dlogits its autograd gradient. For a row x (V,) with target t and eps = label_smoothing:
//   m = max_j x_j,   s = sum_j exp(x_j - m),   lse = m + log(s),   p_j = exp(x_j - m) / s
//   loss = (1 - eps) * (lse - x_t) + eps * (lse - mean_j x_j)
//   dlogits_j = f * (p_j - (1 - eps) * [j == t] - eps / V)
// with f = 1 / (number of non-ignored rows) for the mean, grad_rows[i] or 1 otherwise. That is
// ce_row, the fast path. ce_row_opts adds the options (class weights w, z-loss zs, soft cap):
//   z_j = cap * tanh(x_j / cap)   (z = x without a cap; everything below is over z)
//   loss = (1 - eps) * w_t * (lse - z_t) + (eps / V) * (sum(w) * lse - sum_j w_j z_j) + zs * lse^2
//   dz_j = f * ((c + 2 * zs * lse) * p_j - (1 - eps) * w_t * [j == t] - (eps / V) * w_j),
//          c = (1 - eps) * w_t + (eps / V) * sum(w)
//   dlogits_j = dz_j * (1 - (z_j / cap)^2)
// with f = 1 / (sum of the kept rows' w_t) for the mean (crossentropy.h says how the z-loss's
// own mean over the kept rows is folded in).
//
// Three sweeps over a row: max (and the sum, for label smoothing); exp into dlogits and their sum;
// rescale dlogits in place. Only the first reads logits from DRAM: a row of even V = 50304 floats
// (197 KiB) is still in L2 for the second and third, so memory sees one read of the logits and
// one write of the gradient, 8 bytes per logit in float32. dlogits may be the logits buffer
// (out=logits in Python): sweep 2 reads x_j before it writes the same d_j, and x_t is read first.
// NaN and +-Inf propagate as in PyTorch: a NaN or +Inf logit makes its row's loss and gradient NaN.
//
// With a cap, sweep 1 writes z into dlogits and sweep 3 takes exp(z_j - m) again, instead of
// keeping exp(z_j - m) from sweep 2: the tanh's derivative needs z_j, and dlogits may be x.
//
// Not here: argument validation (the Python front does it before any memory is touched),
// probabilities as targets.
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

// One row, no options: writes d (V,) and returns the row's loss. `scale` multiplies the gradient.
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

// One row with the options (weights, z-loss, soft cap): writes d (V,) = f * dlogits and returns
// the row's loss. The file's header has the formulas. `w` is o->weight; ce_row_opts inlines this
// twice, once with w = NULL, so that no loop tests it per element (with the test inside, the
// unweighted float32 row with a cap ran 3.5x slower than the weighted one).
static inline __attribute__((always_inline)) real FT_FN(ce_row_opts_body)(
    real *d, const real *x, int64_t V, int64_t t, const FT_FN(ft_internal_ce_opts) *o, real f,
    const real *w) {
    const real eps = o->eps, cap = o->softcap;
    // sweep 1: z (into d, when capped), m = max(z), and sum_j w_j z_j for the smoothing term,
    // in blocks as s below
    real m = -INFINITY;
    double sum_wz = 0;
    const real *z = x;
    if (cap > 0) {
        for (int64_t lo = 0; lo < V; lo += CE_SUM_BLOCK) {
            const int64_t hi = V - lo < CE_SUM_BLOCK ? V : lo + CE_SUM_BLOCK;
            real block = 0;
#pragma omp simd reduction(max : m) reduction(+ : block)
            for (int64_t j = lo; j < hi; j++) {
                const real zj = cap * TANH(x[j] / cap);
                d[j] = zj;
                m = zj > m ? zj : m;
                block += (w ? w[j] : 1) * zj;
            }
            sum_wz += block;
        }
        z = d;
    } else if (eps > 0) {
        for (int64_t lo = 0; lo < V; lo += CE_SUM_BLOCK) {
            const int64_t hi = V - lo < CE_SUM_BLOCK ? V : lo + CE_SUM_BLOCK;
            real block = 0;
#pragma omp simd reduction(max : m) reduction(+ : block)
            for (int64_t j = lo; j < hi; j++) {
                m = x[j] > m ? x[j] : m;
                block += (w ? w[j] : 1) * x[j];
            }
            sum_wz += block;
        }
    } else {
#pragma omp simd reduction(max : m)
        for (int64_t j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
    }
    const real z_t = z[t];  // before d, which may be x, is overwritten

    // sweep 2: s = sum_j exp(z_j - m); without a cap d_j = exp(z_j - m) too, for sweep 3
    double s = 0;
    for (int64_t lo = 0; lo < V; lo += CE_SUM_BLOCK) {
        const int64_t hi = V - lo < CE_SUM_BLOCK ? V : lo + CE_SUM_BLOCK;
        real block = 0;
        if (cap > 0) {
#pragma omp simd reduction(+ : block)
            for (int64_t j = lo; j < hi; j++) block += EXP(z[j] - m);
        } else {
#pragma omp simd reduction(+ : block)
            for (int64_t j = lo; j < hi; j++) {
                const real e = EXP(x[j] - m);
                d[j] = e;
                block += e;
            }
        }
        s += block;
    }
    const real lse = m + (real)log(s);
    const real w_t = w ? w[t] : 1;
    real loss = (1 - eps) * w_t * (lse - z_t) + o->z * lse * lse;
    if (eps > 0) loss += (real)(eps * ((double)o->weight_sum * lse - sum_wz) / (double)V);

    // sweep 3: d_j = a * exp(z_j - m) - b * w_j (times the cap's 1 - (z_j / cap)^2), then the
    // target's -bt
    const real c = (1 - eps) * w_t + eps * o->weight_sum / (real)V + 2 * o->z * lse;
    const real a = (real)(f * c / s), b = f * eps / (real)V, bt = f * (1 - eps) * w_t;
    if (cap > 0) {
#pragma omp simd
        for (int64_t j = 0; j < V; j++) {
            const real zj = d[j], u = zj / cap;
            d[j] = (EXP(zj - m) * a - b * (w ? w[j] : 1)) * (1 - u * u);
        }
        const real u_t = z_t / cap;
        d[t] -= bt * (1 - u_t * u_t);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < V; j++) d[j] = d[j] * a - b * (w ? w[j] : 1);
        d[t] -= bt;
    }
    return loss;
}

FT_CLONES static real FT_FN(ce_row_opts)(real *d, const real *x, int64_t V, int64_t t,
                                         const FT_FN(ft_internal_ce_opts) *o, real f) {
    if (o->weight) return FT_FN(ce_row_opts_body)(d, x, V, t, o, f, o->weight);
    return FT_FN(ce_row_opts_body)(d, x, V, t, o, f, NULL);
}

double FT_FN(ft_internal_ce_setup)(FT_FN(ft_internal_ce_opts) *o, const int64_t *targets,
                                   int64_t N, int64_t V, int64_t ignore_index, int reduction,
                                   double label_smoothing, const real *weight,
                                   double lse_square_scale, double softcap) {
    int64_t n_valid = 0;
    double denom = 0;  // the kept rows' summed weight[t], in row order
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] == ignore_index) continue;
        n_valid++;
        denom += weight ? (double)weight[targets[i]] : 1.0;
    }
    double weight_sum = (double)V;
    if (weight) {
        weight_sum = 0;
        for (int64_t j = 0; j < V; j++) weight_sum += weight[j];
    }
    const int mean = reduction == FT_REDUCTION_MEAN;
    o->eps = (real)label_smoothing;
    o->weight = weight;
    o->weight_sum = (real)weight_sum;
    o->z = (real)(mean && weight && n_valid > 0 ? lse_square_scale * denom / (double)n_valid
                                                : lse_square_scale);
    o->softcap = (real)softcap;
    // PyTorch divides the mean by the kept rows' weight (their count without weights). With no
    // kept row, every row's gradient is zero and the loss is 0/0 = NaN; with kept rows whose
    // weights sum to 0, their gradients are 0/0 = NaN too (torch gives the same).
    o->scale = !mean ? 1 : denom > 0 ? (real)(1.0 / denom) : n_valid > 0 ? NAN : 0;
    return denom;
}

real FT_FN(ft_internal_ce_row)(real *d, const real *x, int64_t V, int64_t t,
                               int64_t ignore_index, const FT_FN(ft_internal_ce_opts) *o, real f) {
    if (t == ignore_index) {
        memset(d, 0, (size_t)V * sizeof(real));
        return 0;
    }
    if (!o->weight && o->z == 0 && o->softcap == 0) return FT_FN(ce_row)(d, x, V, t, o->eps, f);
    return FT_FN(ce_row_opts)(d, x, V, t, o, f);
}

void FT_FN(ft_internal_ce_rows)(real *dlogits, real *losses, const real *logits,
                                const int64_t *targets, const real *grad_rows, int64_t N,
                                int64_t V, int64_t ignore_index,
                                const FT_FN(ft_internal_ce_opts) *o, int nthreads) {
    // Rows are independent and each is computed by one thread, start to end: the result is the
    // same bits for any thread count.
#pragma omp parallel for schedule(static) num_threads(nthreads) \
    if (nthreads > 1 && N * V >= FT_CE_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        losses[i] = FT_FN(ft_internal_ce_row)(dlogits + i * V, logits + i * V, V, targets[i],
                                              ignore_index, o,
                                              grad_rows ? grad_rows[i] : o->scale);
    }
}

double FT_FN(ft_internal_ce_total)(const real *losses, int64_t N, double denom, int reduction) {
    if (reduction == FT_REDUCTION_NONE) return 0;
    double total = 0;  // serial, in row order: deterministic
    for (int64_t i = 0; i < N; i++) total += losses[i];
    if (reduction == FT_REDUCTION_SUM) return total;
    return denom > 0 ? total / denom : NAN;
}

double FT_FN(ft_crossentropy)(real *dlogits, real *losses, const real *logits,
                              const int64_t *targets, int64_t N, int64_t V, int64_t ignore_index,
                              int reduction, double label_smoothing, const real *weight,
                              double lse_square_scale, double softcap, const real *grad_rows,
                              int nthreads) {
    FT_FN(ft_internal_ce_opts) o;
    const double denom = FT_FN(ft_internal_ce_setup)(&o, targets, N, V, ignore_index, reduction,
                                                     label_smoothing, weight, lse_square_scale,
                                                     softcap);
    FT_FN(ft_internal_ce_rows)(dlogits, losses, logits, targets, grad_rows, N, V, ignore_index,
                               &o, nthreads);
    return FT_FN(ft_internal_ce_total)(losses, N, denom, reduction);
}
