// linear.c: linear layer forward and backward around a BLAS GEMM found at run time, bias fused.
//
// Matches src/fasttrain/kernels/ref/linear.py (the spec) and torch.nn.functional.linear with its
// autograd gradients. x (N,C), W (OC,C) as in torch.nn.Linear, b (OC,), dy (N,OC):
//   forward   y  =  x W^T + b
//   backward  dx =  dy W          dW (= or +=) dy^T x          db (= or +=) sum over rows of dy
//
// The O(N*C*OC) work is the caller's BLAS GEMM (Fortran convention, column-major), passed in as a
// function pointer: nothing is linked at build time, and kernels/c/linear.pyx hands over the
// sgemm/dgemm of scipy.linalg.cython_blas (scipy's OpenBLAS, which picks its kernel for the CPU it
// runs on). This file does the O(N*OC) rest, and does it so that nothing is paid twice:
//   * forward bias: b is copied into every row of y, then the GEMM adds x W^T with beta = 1.
//     OpenBLAS scales C by beta in a pass of its own unless beta == 1 (GEMM_BETA in its
//     driver/level3), so with beta = 0 it would have zeroed y in that pass anyway: the bias costs
//     about what the zeroing would have.
//   * accumulate: dW += dy^T x is the GEMM with beta = 1: no temporary, no extra pass.
//   * db: one read of dy, adding its rows in order. No GEMM exposes its packed copy of
//     dy, so this read is the one that BLAS could not have saved; it costs about 1% of the
//     backward at (4096, 768, 3072).
// Threads: each GEMM's output rows are split over an OpenMP team (matmul below), each thread one
// single-threaded GEMM call; fasttrain/threads.py makes the BLAS single-threaded for the call and
// says why (a second pool beside libgomp's spins on the cores our team needs). The O(N*OC) passes
// run on the calling thread, with no OpenMP region: one thread reads dy at ~20 GB/s, a percent
// or two of the GEMMs' time.
// Layouts: x, W and dy may each be C-ordered or Fortran-ordered (a transposed view); BLAS reads
// either through its transa/transb flags (matmul below), so neither is copied.
//
// Not here: argument validation and the 32-bit BLAS size check (the Python front, and a defensive
// FT_ERR_BLAS_INT below), choosing the BLAS and its thread count (fasttrain/threads.py).
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fasttrain.h"
#include "real.h"
#include "linear.h"

// out (p,q) = A (p,k) B (k,q) + beta out (linear.h), its rows split over an OpenMP team.
// Column-major BLAS sees a C-ordered (r,c) array M as the (c x r) matrix M^T with leading
// dimension c, and a Fortran-ordered one as M itself with leading dimension r. So it computes
// out^T (q x p) = B^T (q x k) A^T (k x p): reading a C-ordered operand as its transpose needs no
// flag ('N'), a Fortran-ordered one needs 'T'. p, q, k > 0 (the caller handles empty shapes).
// Each thread of the team makes one GEMM call for its block of out's rows (GEMM_ROW_ALIGN rows
// a multiple, K never split: every element is the same dot product as in one whole call); the
// caller makes the BLAS run each call on the calling thread (fasttrain/threads.py: why).
void FT_FN(ft_internal_matmul)(gemm_fn gemm, real *out, const real *A, int a_f, const real *B,
                               int b_f, int64_t p, int64_t k, int64_t q, real beta,
                               int nthreads) {
    const char ta = b_f ? 'T' : 'N', tb = a_f ? 'T' : 'N';
    const int m = (int)q, kk = (int)k;
    const int lda = b_f ? kk : m, ldb = a_f ? (int)p : kk, ldc = m;
    const real one = 1;
    const int64_t blocks = (p + GEMM_ROW_ALIGN - 1) / GEMM_ROW_ALIGN;
    int team = nthreads < blocks ? nthreads : (int)blocks;
    if ((double)p * (double)q * (double)k <= GEMM_ONE_CALL_MAX) team = 1;
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int64_t nt = 1, id = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        id = omp_get_thread_num();
#endif
        const int64_t lo = blocks * id / nt * GEMM_ROW_ALIGN;
        int64_t hi = blocks * (id + 1) / nt * GEMM_ROW_ALIGN;
        if (hi > p) hi = p;
        if (hi > lo) {
            const int n = (int)(hi - lo);
            const real *a = a_f ? A + lo : A + lo * k;  // rows lo.. of A, either layout
            gemm(&ta, &tb, &m, &n, &kk, &one, B, &lda, a, &ldb, &beta, out + lo * q, &ldc);
        }
    }
}

// acc (n,) += row (n,); vectorised over columns, so each acc[j] still adds rows in order.
FT_CLONES void FT_FN(ft_internal_add_row)(real *restrict acc, const real *restrict row,
                                          int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) acc[j] += row[j];
}

// sum of a contiguous column (Fortran-ordered dy).
FT_CLONES static real FT_FN(sum_column)(const real *col, int64_t n) {
    real s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += col[i];
    return s;
}

// db (OC,) (= or +=) sum over the N rows of dy (N,OC): the rows are added to db in order (so
// with accumulate, to the old db first), the same bits for any thread count.
static void FT_FN(bias_backward)(real *db, const real *dy, int dy_f, int64_t N, int64_t OC,
                                 int accumulate) {
    if (dy_f) {  // column j is dy + j*N, contiguous
        for (int64_t j = 0; j < OC; j++) {
            const real s = FT_FN(sum_column)(dy + j * N, N);
            db[j] = accumulate ? db[j] + s : s;
        }
        return;
    }
    if (!accumulate) memset(db, 0, (size_t)OC * sizeof(real));
    for (int64_t i = 0; i < N; i++) FT_FN(ft_internal_add_row)(db, dy + i * OC, OC);
}

// y (N,OC) = b in every row.
void FT_FN(ft_internal_fill_rows)(real *y, const real *b, int64_t N, int64_t OC) {
    for (int64_t i = 0; i < N; i++) memcpy(y + i * OC, b, (size_t)OC * sizeof(real));
}

int FT_FN(ft_linear_forward)(gemm_fn gemm, real *y, const real *x, const real *W, const real *b,
                             int64_t N, int64_t C, int64_t OC, int layout, int nthreads) {
    if (!fits_blas_int(N) || !fits_blas_int(C) || !fits_blas_int(OC)) return FT_ERR_BLAS_INT;
    if (N == 0 || OC == 0) return 0;
    if (b) FT_FN(ft_internal_fill_rows)(y, b, N, OC);
    else if (C == 0) memset(y, 0, (size_t)(N * OC) * sizeof(real));
    if (C == 0) return 0;
    // y = x W^T + (b or nothing); W^T of a C-ordered W is Fortran-ordered, and vice versa
    FT_FN(ft_internal_matmul)(gemm, y, x, layout & FT_X_FORTRAN, W, !(layout & FT_W_FORTRAN), N,
                              C, OC, b ? 1 : 0, nthreads);
    return 0;
}

int FT_FN(ft_linear_backward)(gemm_fn gemm, real *dx, real *dW, real *db, const real *x,
                              const real *W, const real *dy, int64_t N, int64_t C, int64_t OC,
                              int layout, int accumulate, int nthreads) {
    if (!fits_blas_int(N) || !fits_blas_int(C) || !fits_blas_int(OC)) return FT_ERR_BLAS_INT;
    const int x_f = (layout & FT_X_FORTRAN) != 0, w_f = (layout & FT_W_FORTRAN) != 0;
    const int dy_f = (layout & FT_DY_FORTRAN) != 0;
    // db first, while dy may still be in cache from the layer above that wrote it
    if (db && OC > 0) {
        if (N > 0) FT_FN(bias_backward)(db, dy, dy_f, N, OC, accumulate);
        else if (!accumulate) memset(db, 0, (size_t)OC * sizeof(real));
    }
    // dx (N,C) = dy (N,OC) W (OC,C)
    if (dx && N > 0 && C > 0) {
        if (OC > 0) FT_FN(ft_internal_matmul)(gemm, dx, dy, dy_f, W, w_f, N, OC, C, 0,
                                                  nthreads);
        else memset(dx, 0, (size_t)(N * C) * sizeof(real));
    }
    // dW (OC,C) (= or +=) dy^T (OC,N) x (N,C); dy^T of a C-ordered dy is Fortran-ordered
    if (OC > 0 && C > 0) {
        if (N > 0)
            FT_FN(ft_internal_matmul)(gemm, dW, dy, !dy_f, x, x_f, OC, N, C,
                                      accumulate ? 1 : 0, nthreads);
        else if (!accumulate) memset(dW, 0, (size_t)(OC * C) * sizeof(real));
    }
    return 0;
}
