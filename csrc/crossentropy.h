// crossentropy.h: the pieces of crossentropy.c that linear_crossentropy.c reuses. Internal to the
// C library: not in fasttrain.h, not declared to Cython, and prefixed ft_internal_ so that no one
// mistakes them for the API. Include after real.h (the functions exist as _f32 and _f64).
#pragma once
#include <stdint.h>
#include "real.h"

// Below this many logits one thread is faster than waking a team.
#define FT_CE_PARALLEL_MIN (1 << 15)

// What one call asks of every row, set up once by ft_internal_ce_setup. All off (0, NULL) is the
// plain cross-entropy, which takes crossentropy.c's fast row.
typedef struct {
    real eps;            // label smoothing
    const real *weight;  // (V,) class weights, or NULL (all 1)
    real weight_sum;     // sum of weight (V without weights): the smoothing term's
    real z;              // the z-loss coefficient within a row's loss (see ft_internal_ce_setup)
    real softcap;        // > 0: logits -> softcap * tanh(logits / softcap); 0: no cap
    real scale;          // every row's gradient factor (1 / the mean's denominator, or 1)
} FT_FN(ft_internal_ce_opts);

// The call's options from its arguments and targets (N,): returns the "mean"'s denominator, the
// kept rows' summed weight[t] (their count without weights). For the weighted mean, the z-loss
// (a plain mean over the n kept rows) enters each row's loss as z = lse_square_scale * denom / n
// times lse^2, so that one sum of the row losses divided by denom gives
// sum(ce) / denom + lse_square_scale * sum(lse^2) / n.
double FT_FN(ft_internal_ce_setup)(FT_FN(ft_internal_ce_opts) *o, const int64_t *targets,
                                   int64_t N, int64_t V, int64_t ignore_index, int reduction,
                                   double label_smoothing, const real *weight,
                                   double lse_square_scale, double softcap);

// One row x (V,) with target t: d (V,) = its dlogits times f (d may be x), and its loss returned;
// ignore_index: a zero gradient and 0. No OpenMP: for callers that split rows themselves.
real FT_FN(ft_internal_ce_row)(real *d, const real *x, int64_t V, int64_t t,
                               int64_t ignore_index, const FT_FN(ft_internal_ce_opts) *o, real f);

// Rows [0, N) of logits (N,V): dlogits (N,V) = each row's gradient times o->scale, or times
// grad_rows[i] when grad_rows (N,) is not NULL, and losses (N,) = each row's loss (0 and a zero
// gradient for ignore_index rows). dlogits may be logits. OpenMP over rows with `nthreads` when
// the work is large enough (nthreads = 1: no parallel region is opened); each row is one
// thread's, so the bits do not depend on the count.
void FT_FN(ft_internal_ce_rows)(real *dlogits, real *losses, const real *logits,
                                const int64_t *targets, const real *grad_rows, int64_t N,
                                int64_t V, int64_t ignore_index,
                                const FT_FN(ft_internal_ce_opts) *o, int nthreads);

// The reduced loss from the row losses (N,): their sum in row order, in double, divided by
// `denom` (ft_internal_ce_setup's) for the mean (NaN when it is not > 0); 0 for
// FT_REDUCTION_NONE.
double FT_FN(ft_internal_ce_total)(const real *losses, int64_t N, double denom, int reduction);
