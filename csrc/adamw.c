// adamw.c: the optimizer step over one flat buffer of parameters (AdamW, SGD with momentum) and
// the sum of squares that gradient clipping needs, each in one pass over memory.
//
// Matches src/fasttrain/kernels/ref/adamw.py (the spec) operation for operation, and the formulas
// of torch.optim.AdamW / torch.optim.SGD in their single-tensor path (_single_tensor_adam with
// decoupled_weight_decay=True, _single_tensor_sgd; the default on CPU tensors), in their order.
// For AdamW at step t (from 1), with g = grad_scale * grad:
//   p = p * (1 - lr*wd)                                  torch: param.mul_(1 - lr*weight_decay)
//   m = lerp(m, g, 1 - beta1)                            torch: exp_avg.lerp_(grad, 1 - beta1)
//   v = v*beta2 + (1 - beta2)*g*g                        torch: exp_avg_sq.mul_(beta2).addcmul_(...)
//   v_max = maximum(v_max, v)   (AMSGrad only)           torch: torch.maximum(max_exp_avg_sqs[i], ...)
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps            torch: (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
//                 (with AMSGrad: sqrt(v_max))
//   p = p + (-lr / (1 - beta1^t)) * m / denom            torch: param.addcdiv_(exp_avg, denom, value=-step_size)
// The per-call scalars (bias corrections, step size, decay factor) are computed once, in double,
// and rounded to `real` as torch rounds its Python-float scalars for a float32 tensor.
//
// Memory traffic: param, m, v read and written once, grad read once: 28 bytes per parameter in
// float32, the minimum. The kernel is bound by memory bandwidth, not arithmetic.
//
// Bits. CMakeLists.txt compiles this file with -ffp-contract=off: no multiply-add is fused, so
// every element is the IEEE result of the spec's operations in the spec's order, the same in the
// vector body and the scalar tail, in each function clone, for any thread count, and equal to the
// numpy reference and to the Numba twin. PyTorch itself is not bit-reproducible across CPUs (its
// AVX2 lerp/addcmul/add(alpha=) use FMA, and its float32 sqrt is off by one ulp for about one
// element in six), so we match its formulas, not its bits: after 100 steps the parameters agree
// to about 2 ulp (tests/test_adamw.py).
//
// NaN and Inf propagate as in PyTorch: a NaN or Inf gradient makes that parameter NaN.
// Not here: argument validation (the Python front checks dtypes, shapes, contiguity, aliasing and
// hyper-parameter ranges before any write), maximize (grad_scale = -1 is it), dampening,
// parameter groups (the arena puts decayed parameters in one range, and the optimizer calls the
// kernel per range).
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "fasttrain.h"
#include "real.h"
#ifdef _OPENMP
#include <omp.h>
#endif

// Below this many elements one thread is faster than waking a team.
#define STEP_PARALLEL_MIN (1 << 15)
// Threads split a buffer at multiples of 64 elements, so no two threads write one cache line.
#define STEP_ALIGN 64

// [lo, hi) of n elements for thread `id` of `nt`: contiguous, split at multiples of STEP_ALIGN.
static void chunk_of(int64_t n, int id, int nt, int64_t *lo, int64_t *hi) {
    const int64_t blocks = (n + STEP_ALIGN - 1) / STEP_ALIGN;
    const int64_t b0 = blocks * id / nt, b1 = blocks * (id + 1) / nt;
    *lo = b0 * STEP_ALIGN < n ? b0 * STEP_ALIGN : n;
    *hi = b1 * STEP_ALIGN < n ? b1 * STEP_ALIGN : n;
}

#ifdef _OPENMP
#define THREAD_ID omp_get_thread_num()
#define TEAM_SIZE omp_get_num_threads()
#else
#define THREAD_ID 0
#define TEAM_SIZE 1
#endif

// ----------------------------------------------------------------------------------------------
// AdamW

// One chunk of n elements. lerp as torch computes it: with weight w = 1 - beta1,
// m + w*(g - m) if w < 0.5, else g - (g - m)*(1 - w) (aten/src/ATen/native/Lerp.h).
// AMSGrad (v_max not NULL): v_max = maximum(v_max, v), NaN propagating as torch.maximum, and
// the denominator reads v_max. Each case is its own loop (the flags are constants after
// inlining), as in sgd_loop below.
static inline __attribute__((always_inline)) void FT_FN(adamw_loop)(
    real *restrict p, real *restrict m, real *restrict v, real *restrict v_max,
    const real *restrict grad, int64_t n, real decay, real w1, real beta2, real w2,
    real bc2_sqrt, real eps, real neg_step_size, real scale, const int small_w1,
    const int amsgrad) {
    const real w1c = 1 - w1;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const real g = grad[i] * scale;
        const real mi = small_w1 ? m[i] + w1 * (g - m[i]) : g - (g - m[i]) * w1c;
        real vi = v[i] * beta2 + w2 * g * g;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            const real vm = v_max[i];
            vi = (vi > vm || vi != vi) ? vi : vm;
            v_max[i] = vi;
        }
        const real denom = SQRT(vi) / bc2_sqrt + eps;
        p[i] = p[i] * decay + neg_step_size * mi / denom;
    }
}

FT_CLONES static void FT_FN(adamw_chunk)(real *restrict p, real *restrict m, real *restrict v,
                                         real *restrict v_max, const real *restrict grad,
                                         int64_t n, real decay, real w1, real beta2, real w2,
                                         real bc2_sqrt, real eps, real neg_step_size, real scale) {
#define ADAMW_CASE(small_w1, amsgrad)                                                          \
    FT_FN(adamw_loop)(p, m, v, v_max, grad, n, decay, w1, beta2, w2, bc2_sqrt, eps,           \
                      neg_step_size, scale, small_w1, amsgrad)
    if (w1 < (real)0.5) {
        if (v_max) ADAMW_CASE(1, 1);
        else ADAMW_CASE(1, 0);
    } else {
        if (v_max) ADAMW_CASE(0, 1);
        else ADAMW_CASE(0, 0);
    }
#undef ADAMW_CASE
}

void FT_FN(ft_adamw)(real *param, real *m, real *v, real *v_max, const real *grad, int64_t n,
                     int64_t step, double lr, double beta1, double beta2, double eps,
                     double weight_decay, double grad_scale, int nthreads) {
    // Once per call, in double, as torch does in Python (1 - beta**step, then ** 0.5).
    const double bias_correction1 = 1.0 - pow(beta1, (double)step);
    const double bias_correction2 = 1.0 - pow(beta2, (double)step);
    const real decay = (real)(1.0 - lr * weight_decay);
    const real w1 = (real)(1.0 - beta1), w2 = (real)(1.0 - beta2);
    const real bc2_sqrt = (real)pow(bias_correction2, 0.5);
    const real neg_step_size = (real)(-(lr / bias_correction1));

#pragma omp parallel num_threads(nthreads) if (n >= STEP_PARALLEL_MIN)
    {
        int64_t lo, hi;
        chunk_of(n, THREAD_ID, TEAM_SIZE, &lo, &hi);
        FT_FN(adamw_chunk)(param + lo, m + lo, v + lo, v_max ? v_max + lo : NULL, grad + lo,
                           hi - lo, decay, w1, (real)beta2, w2, bc2_sqrt, (real)eps,
                           neg_step_size, (real)grad_scale);
    }
}

// ----------------------------------------------------------------------------------------------
// SGD with momentum (torch.optim.SGD)

// With g = scale*grad:  g += wd*p (if wd != 0);  buf = buf*momentum + (1 - dampening)*g, then
// g = buf or, with nesterov, g + momentum*buf (if momentum != 0);  p += -lr*g. (torch's first
// step copies g into a new buffer undampened: the caller passes dampening 0 for a fresh, zero
// buffer. Without dampening the factor is exactly 1 and g*1 == g: the same bits as without it.)
// Each case is its own loop (the flags are constants after inlining), so no loop tests them per
// element and, without momentum, buf is neither read nor written. wd = 0 skips the term, as
// torch does: 0 * inf would be NaN.
static inline __attribute__((always_inline)) void FT_FN(sgd_loop)(
    real *restrict p, real *restrict buf, const real *restrict grad, int64_t n, real neg_lr,
    real momentum, real damp_w, real wd, real scale, const int has_wd, const int has_momentum,
    const int nesterov) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        real g = grad[i] * scale;
        if (has_wd) g = g + wd * p[i];
        if (has_momentum) {
            const real b = buf[i] * momentum + damp_w * g;
            buf[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        p[i] = p[i] + neg_lr * g;
    }
}

FT_CLONES static void FT_FN(sgd_chunk)(real *restrict p, real *restrict buf,
                                       const real *restrict grad, int64_t n, real neg_lr,
                                       real momentum, real damp_w, int nesterov, real wd,
                                       real scale) {
#define SGD_CASE(has_wd, has_momentum, nest)                                                   \
    FT_FN(sgd_loop)(p, buf, grad, n, neg_lr, momentum, damp_w, wd, scale, has_wd, has_momentum, \
                    nest)
    if (momentum == 0) {
        if (wd != 0) SGD_CASE(1, 0, 0);
        else SGD_CASE(0, 0, 0);
    } else if (!nesterov) {
        if (wd != 0) SGD_CASE(1, 1, 0);
        else SGD_CASE(0, 1, 0);
    } else {
        if (wd != 0) SGD_CASE(1, 1, 1);
        else SGD_CASE(0, 1, 1);
    }
#undef SGD_CASE
}

void FT_FN(ft_sgd)(real *param, real *buf, const real *grad, int64_t n, double lr,
                   double momentum, double dampening, int nesterov, double weight_decay,
                   double grad_scale, int nthreads) {
#pragma omp parallel num_threads(nthreads) if (n >= STEP_PARALLEL_MIN)
    {
        int64_t lo, hi;
        chunk_of(n, THREAD_ID, TEAM_SIZE, &lo, &hi);
        FT_FN(sgd_chunk)(param + lo, momentum != 0 ? buf + lo : NULL, grad + lo, hi - lo,
                         (real)(-lr), (real)momentum, (real)(1.0 - dampening), nesterov,
                         (real)weight_decay,
                         (real)grad_scale);
    }
}

// ----------------------------------------------------------------------------------------------
// sum of squares, for the gradient norm

// The buffer is cut into blocks whose size depends only on n (at least SS_BLOCK_MIN elements, at
// most SS_BLOCKS_MAX blocks); each block is summed in one fixed order, then the block sums are
// added serially in block order. Threads only decide who computes which block, so the result is
// the same bits for any thread count. Squares and sums in double: a float32 square is exact in
// double, and 1e8 of them lose at most ~1e-8 relative.
#define SS_BLOCK_MIN 4096
#define SS_BLOCKS_MAX 1024
#define SS_LANES 16  // independent partial sums per block: four AVX2 vectors of doubles in flight

FT_CLONES static double FT_FN(sumsq_block)(const real *restrict x, int64_t n) {
    double acc[SS_LANES] = {0};
    int64_t i = 0;
    for (; i + SS_LANES <= n; i += SS_LANES) {
#pragma omp simd
        for (int k = 0; k < SS_LANES; k++) acc[k] += (double)x[i + k] * (double)x[i + k];
    }
    for (int k = 0; i < n; i++, k++) acc[k] += (double)x[i] * (double)x[i];
    for (int w = SS_LANES / 2; w > 0; w /= 2)  // pairwise, in a fixed order
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

double FT_FN(ft_sum_of_squares)(const real *x, int64_t n, int nthreads) {
    if (n <= 0) return 0.0;
    int64_t block = (n + SS_BLOCKS_MAX - 1) / SS_BLOCKS_MAX;
    block = block < SS_BLOCK_MIN ? SS_BLOCK_MIN : (block + 63) / 64 * 64;
    const int64_t nblocks = (n + block - 1) / block;  // <= SS_BLOCKS_MAX
    double sums[SS_BLOCKS_MAX];

#pragma omp parallel for schedule(static) num_threads(nthreads) if (n >= STEP_PARALLEL_MIN)
    for (int64_t b = 0; b < nblocks; b++) {
        const int64_t lo = b * block, len = n - lo < block ? n - lo : block;
        sums[b] = FT_FN(sumsq_block)(x + lo, len);
    }

    double total = 0.0;  // serial, in block order: deterministic
    for (int64_t b = 0; b < nblocks; b++) total += sums[b];
    return total;
}
