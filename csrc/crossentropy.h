// crossentropy.h: the pieces of crossentropy.c that linear_crossentropy.c reuses. Internal to the
// C library: not in fasttrain.h, not declared to Cython, and prefixed ft_internal_ so that no one
// mistakes them for the API. Include after real.h (the functions exist as _f32 and _f64).
#pragma once
#include <stdint.h>
#include "real.h"

// Below this many logits one thread is faster than waking a team.
#define FT_CE_PARALLEL_MIN (1 << 15)

// The gradient's factor for a reduction: 1 / (rows not ignored) for the mean (0 if there are
// none: every gradient is then zero, as in PyTorch), 1 otherwise.
real FT_FN(ft_internal_ce_scale)(int64_t n_valid, int reduction);

// One row x (V,) with target t: d (V,) = its dlogits (d may be x), and its loss returned;
// ignore_index: a zero gradient and 0. No OpenMP: for callers that split rows themselves.
real FT_FN(ft_internal_ce_row)(real *d, const real *x, int64_t V, int64_t t,
                               int64_t ignore_index, real eps, real scale);

// Rows [0, N) of logits (N,V): dlogits (N,V) = scale * (softmax - target distribution), and
// losses (N,) = each row's loss (0 and a zero gradient for ignore_index rows). dlogits may be
// logits. OpenMP over rows with `nthreads` when the work is large enough (nthreads = 1: no
// parallel region is opened); each row is one thread's, so the bits do not depend on the count.
void FT_FN(ft_internal_ce_rows)(real *dlogits, real *losses, const real *logits,
                                const int64_t *targets, int64_t N, int64_t V,
                                int64_t ignore_index, real eps, real scale, int nthreads);

// The reduced loss from the row losses (N,): their sum in row order, in double, divided by
// n_valid for the mean (NaN when n_valid = 0); 0 for FT_REDUCTION_NONE.
double FT_FN(ft_internal_ce_total)(const real *losses, int64_t N, int64_t n_valid,
                                   int reduction);
