// linear.h: the pieces of linear.c that linear_crossentropy.c reuses. Internal to the C library:
// not in fasttrain.h, not declared to Cython, and prefixed ft_internal_ so that no one mistakes
// them for the API. Include after real.h (the functions exist as _f32 and _f64).
#pragma once
#include <limits.h>
#include <stdint.h>
#include "fasttrain.h"
#include "real.h"

#if defined(FT_F32)
typedef ft_gemm_f32 gemm_fn;
#else
typedef ft_gemm_f64 gemm_fn;
#endif

// BLAS takes sizes as 32-bit ints.
static inline int fits_blas_int(int64_t n) { return n >= 0 && n <= INT_MAX; }

// GEMMs of at most this many multiply-adds run as one call on the calling thread, as OpenBLAS
// itself runs them (fasttrain/threads.py's GEMM_ONE_CALL_MAX: the same number). At 64^3 itself
// a team cost more than it saved: linear_forward 34.7 us a call against 32.4 as one call, the
// backward 77.7 against 70.3 (numpy 31.3 and 69.2), the BLAS switch and the team's wake-up.
#define GEMM_ONE_CALL_MAX (64.0 * 64.0 * 64.0)
// A team's blocks of out's rows are multiples of this many rows.
#define GEMM_ROW_ALIGN 64

// out (p,q) = A (p,k) B (k,q) + beta out, where out is C-ordered and A, B are each C-ordered
// (a_f = 0) or Fortran-ordered (a_f = 1), through the column-major GEMM, out's rows split over
// an OpenMP team of nthreads, one GEMM call each, on one BLAS thread. p, q, k > 0.
void FT_FN(ft_internal_matmul)(gemm_fn gemm, real *out, const real *A, int a_f, const real *B,
                               int b_f, int64_t p, int64_t k, int64_t q, real beta,
                               int nthreads);

// acc (n,) += row (n,); vectorised over columns, so each acc[j] still adds rows in order.
void FT_FN(ft_internal_add_row)(real *restrict acc, const real *restrict row, int64_t n);

// y (N,OC) = b in every row.
void FT_FN(ft_internal_fill_rows)(real *y, const real *b, int64_t N, int64_t OC);
