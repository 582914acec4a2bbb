// linear_crossentropy.c: a linear layer and the softmax cross-entropy after it, forward and
// backward fused, chunk by chunk of rows, so the (N,V) logits never exist.
//
// Matches src/fasttrain/kernels/ref/linear_crossentropy.py (the spec: linear_forward, then
// softmax_cross_entropy, then linear_backward) and torch.nn.functional.cross_entropy(
// F.linear(x, W, b), targets, ...) with its autograd gradients. x (N,C), W (V,C), b (V,),
// targets (N,). For rows [i0, i0+n) of each chunk, with `work` a (n,V) buffer:
//   work  =  x_c W^T + b                 the chunk's logits: one GEMM (b copied in, beta = 1)
//   work  =  dlogits_c, losses_c         crossentropy.c's rows, in place
//   db   +=  column sums of work         rows added in order, on the calling thread
//   dx_c  =  work W                      one GEMM
//   dW   +=  work^T x_c                  one GEMM; beta = 0 for the first chunk unless accumulate
// The mean's 1/n_valid scales every row's gradient, so the valid targets are counted first.
// This is how Liger Kernel's fused linear cross-entropy and Apple's Cut Cross-Entropy
// (Wijmans et al. 2024, arXiv:2411.09009) avoid the logits on GPUs; here a chunk is a bounded
// CPU buffer, whose rows the Python front sizes (kernels/linear_crossentropy.py says how).
// Each chunk reads W three times, so a chunk must be tall enough for the GEMMs to stay bound by
// flops rather than by the reads of W and of dW (dW is read and written per chunk).
//
// Threads: the GEMMs run on BLAS's pool; the cross-entropy rows between them run with
// `nthreads` (the Cython wrapper passes 1: see the measurement in
// src/fasttrain/kernels/c/linear_crossentropy.pyx). db is serial, as in linear.c.
// Results are the same bits for a fixed chunk size and BLAS thread count; they differ from the
// unfused path by rounding only (dW and db are summed chunk by chunk).
//
// Not here: argument validation (the Python front), allocating `work` (the Cython wrapper, so
// that the buffer is an ordinary numpy array), Fortran-ordered x or W (the front copies them).
#include <string.h>
#include "fasttrain.h"
#include "real.h"
#include "crossentropy.h"
#include "linear.h"

int FT_FN(ft_linear_crossentropy)(gemm_fn gemm, double *loss, real *losses, real *dx, real *dW,
                                  real *db, real *work, const real *x, const real *W,
                                  const real *b, const int64_t *targets, int64_t N, int64_t C,
                                  int64_t V, int64_t chunk_rows, int64_t ignore_index,
                                  int reduction, double label_smoothing, int accumulate,
                                  int nthreads) {
    if (!fits_blas_int(N) || !fits_blas_int(C) || !fits_blas_int(V)) return FT_ERR_BLAS_INT;
    if (chunk_rows < 1) chunk_rows = 1;
    int64_t n_valid = 0;
    for (int64_t i = 0; i < N; i++) n_valid += targets[i] != ignore_index;
    const real scale = FT_FN(ft_internal_ce_scale)(n_valid, reduction);
    const real eps = (real)label_smoothing;

    // With nothing to add (no rows, or C = 0 for dW), "=" still means zeroed outputs.
    if (!accumulate) {
        if (db) memset(db, 0, (size_t)V * sizeof(real));
        if ((N == 0 || C == 0) && C > 0) memset(dW, 0, (size_t)(V * C) * sizeof(real));
    }
    // ft_internal_matmul's flags say an operand is Fortran-ordered; the transpose of a C-ordered
    // array is one, so flag 1 below reads W or work (or x_c) transposed, without a copy.
    for (int64_t i0 = 0; i0 < N; i0 += chunk_rows) {
        const int64_t n = N - i0 < chunk_rows ? N - i0 : chunk_rows;
        const real *xc = x + i0 * C;  // (n,C)
        // work (n,V) = x_c W^T + b: the bias copied into every row, then added to by the GEMM
        if (b) {
            FT_FN(ft_internal_fill_rows)(work, b, n, V);
        } else if (C == 0) {
            memset(work, 0, (size_t)(n * V) * sizeof(real));
        }
        if (C > 0) FT_FN(ft_internal_matmul)(gemm, work, xc, 0, W, 1, n, C, V, b ? 1 : 0);
        // work = dlogits_c in place; losses (N,) filled chunk by chunk
        FT_FN(ft_internal_ce_rows)(work, losses + i0, work, targets + i0, n, V, ignore_index,
                                   eps, scale, nthreads);
        if (db) {
            for (int64_t i = 0; i < n; i++) FT_FN(ft_internal_add_row)(db, work + i * V, V);
        }
        if (C == 0) continue;
        // dx_c (n,C) = dlogits_c (n,V) W (V,C)
        if (dx) FT_FN(ft_internal_matmul)(gemm, dx + i0 * C, work, 0, W, 0, n, V, C, 0);
        // dW (V,C) (+)= dlogits_c^T (V,n) x_c (n,C)
        FT_FN(ft_internal_matmul)(gemm, dW, work, 1, xc, 0, V, n, C,
                                  accumulate || i0 > 0 ? 1 : 0);
    }
    *loss = FT_FN(ft_internal_ce_total)(losses, N, n_valid, reduction);
    return 0;
}
