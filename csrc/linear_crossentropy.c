// linear_crossentropy.c: a linear layer and the softmax cross-entropy after it, forward and
// backward fused, chunk by chunk of rows, so the (N,V) logits never exist.
//
// Matches src/fasttrain/kernels/ref/linear_crossentropy.py (the spec: linear_forward, then
// softmax_cross_entropy, then linear_backward) and torch.nn.functional.cross_entropy(
// F.linear(x, W, b), targets, ...) with its autograd gradients. x (N,C), W (V,C), b (V,),
// targets (N,). For rows [i0, i0+n) of each chunk, with `work` a (n,V) buffer:
//   work  =  x_c W^T + b                 the chunk's logits: one GEMM (b copied in, beta = 1)
//   work  =  dlogits_c, losses_c         crossentropy.c's rows, in place   } one pass, block
//   db   +=  column sums of work         rows added in order             } of rows by block
//   dx_c  =  work W                      one GEMM
//   dW   +=  work^T x_c                  one GEMM; beta = 0 for the first chunk unless accumulate
// The mean's 1/n_valid (1/(summed weight[t]) with class weights) scales every row's gradient, so
// the valid targets are counted first; with grad_rows (reduction "none") row i's gradient is
// scaled by grad_rows[i] instead, and dx, dW and db follow from the scaled rows.
// This is how Liger Kernel's fused linear cross-entropy and Apple's Cut Cross-Entropy
// (Wijmans et al. 2024, arXiv:2411.09009) avoid the logits on GPUs; here a chunk is a bounded
// CPU buffer, whose rows the Python front sizes (kernels/linear_crossentropy.py says how).
// Each chunk reads W three times, so a chunk must be tall enough for the GEMMs to stay bound by
// flops rather than by the reads of W and of dW (dW is read and written per chunk).
//
// Threads: the GEMMs run on an OpenMP team of `gemm_nthreads` (linear.c's matmul: one
// single-threaded GEMM call per thread), the pass between them (rows_pass below) on a team of
// `nthreads`, opened once per chunk when the chunk has FT_CE_PARALLEL_MIN logits or more: both
// on libgomp's one pool, so no second pool spins on the cores (fasttrain/threads.py), and at
// V = 50257 the pass runs at two cores' bandwidth instead of one.
// The pass takes the chunk's rows in blocks of about ROW_BLOCK_BYTES: the block's cross-entropy
// rows split across the threads by row, then the block's db sums split by column, while the
// block is still in cache (one read of the chunk from memory instead of two). Each row's
// gradient is one thread's, and each db[j] adds the rows in order, so the bits do not depend on
// the thread count; for a fixed chunk size and thread count they are the same from call to
// call. They differ from the unfused path by rounding only (dW and db summed chunk by chunk).
// Measured (float32, 2 threads, interleaved runs on the shared 2-core machine): at (N, C, V) =
// (8192, 768, 50257) the fused call went from 1.17x the unfused path's time with a serial row loop
// and a second, serial db sweep, to 0.97-1.00x with this pass (two runs of 3 rounds of
// benchmarks/bench_linear_crossentropy.py: 14.5 s against 14.5 s, 16.5 s against 17.0 s); 1 thread
// against 2 in this pass, 4 rounds: 0.91-1.04x (1.47x in a first, cold round) against 0.89-0.96x of
// the unfused time. A first version called crossentropy.c's row loop once per row, opening an
// (inactive) team each time, and split db in pieces of 2048 columns: at (4096, 256, 256) that was
// 1.25x the unfused time, now 0.99x; hence ce_row, with no OpenMP, and DB_COLS small enough for V =
// 256 to split across two threads.
//
// Not here: argument validation (the Python front), allocating `work` (the Cython wrapper, so
// that the buffer is an ordinary numpy array), Fortran-ordered x or W (the front copies them).
#include <string.h>
#include "fasttrain.h"
#include "real.h"
#include "crossentropy.h"
#include "linear.h"

// Rows per block: as many as fill ROW_BLOCK_BYTES (within L3, which the block's db sums read
// back), at least one; a block's db sums are split into pieces of DB_COLS columns.
#define ROW_BLOCK_BYTES ((int64_t)4 << 20)
#define DB_COLS 128

// work (n,V) = dlogits of the chunk's logits in place, losses (n,), db (V,) += the column sums.
static void FT_FN(rows_pass)(real *work, real *losses, real *db, const int64_t *targets,
                             const real *grad_rows, int64_t n, int64_t V, int64_t ignore_index,
                             const FT_FN(ft_internal_ce_opts) *o, int nthreads) {
    int64_t block = ROW_BLOCK_BYTES / (V * (int64_t)sizeof(real));
    if (block < 1) block = 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && n * V >= FT_CE_PARALLEL_MIN)
    for (int64_t r0 = 0; r0 < n; r0 += block) {
        const int64_t r1 = n - r0 < block ? n : r0 + block;
#pragma omp for schedule(static)
        for (int64_t i = r0; i < r1; i++)
            losses[i] = FT_FN(ft_internal_ce_row)(work + i * V, work + i * V, V, targets[i],
                                                  ignore_index, o,
                                                  grad_rows ? grad_rows[i] : o->scale);
        if (db) {  // (the implied barrier above: the block's rows are all written)
#pragma omp for schedule(static)
            for (int64_t j0 = 0; j0 < V; j0 += DB_COLS) {
                const int64_t nj = V - j0 < DB_COLS ? V - j0 : DB_COLS;
                for (int64_t i = r0; i < r1; i++)
                    FT_FN(ft_internal_add_row)(db + j0, work + i * V + j0, nj);
            }
        }
    }
}

int FT_FN(ft_linear_crossentropy)(gemm_fn gemm, double *loss, real *losses, real *dx, real *dW,
                                  real *db, real *work, const real *x, const real *W,
                                  const real *b, const int64_t *targets, int64_t N, int64_t C,
                                  int64_t V, int64_t chunk_rows, int64_t ignore_index,
                                  int reduction, double label_smoothing, const real *weight,
                                  double lse_square_scale, double softcap, const real *grad_rows,
                                  int accumulate, int nthreads, int gemm_nthreads) {
    if (!fits_blas_int(N) || !fits_blas_int(C) || !fits_blas_int(V)) return FT_ERR_BLAS_INT;
    if (chunk_rows < 1) chunk_rows = 1;
    FT_FN(ft_internal_ce_opts) o;
    const double denom = FT_FN(ft_internal_ce_setup)(&o, targets, N, V, ignore_index, reduction,
                                                     label_smoothing, weight, lse_square_scale,
                                                     softcap);

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
        if (C > 0) FT_FN(ft_internal_matmul)(gemm, work, xc, 0, W, 1, n, C, V, b ? 1 : 0,
                                             gemm_nthreads);
        // work = dlogits_c in place, losses (N,) filled chunk by chunk, db += column sums
        FT_FN(rows_pass)(work, losses + i0, db, targets + i0, grad_rows ? grad_rows + i0 : NULL,
                         n, V, ignore_index, &o, nthreads);
        if (C == 0) continue;
        // dx_c (n,C) = dlogits_c (n,V) W (V,C)
        if (dx) FT_FN(ft_internal_matmul)(gemm, dx + i0 * C, work, 0, W, 0, n, V, C, 0,
                                                      gemm_nthreads);
        // dW (V,C) (+)= dlogits_c^T (V,n) x_c (n,C)
        FT_FN(ft_internal_matmul)(gemm, dW, work, 1, xc, 0, V, n, C,
                                  accumulate || i0 > 0 ? 1 : 0, gemm_nthreads);
    }
    *loss = FT_FN(ft_internal_ce_total)(losses, N, denom, reduction);
    return 0;
}
