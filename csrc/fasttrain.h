// fasttrain.h: every function the C library exports, with its shapes.
//
// Shape letters: N rows (tokens; N = B*T in a model), V vocabulary, C input channels,
// OC output channels. All arrays are C-contiguous; the Python front (src/fasttrain/kernels/)
// validates dtypes, shapes, layouts and index ranges before any of these is called.
// Arguments go outputs, inputs, sizes, options; `nthreads` is the OpenMP team size for this call
// (the count lives in Python, fasttrain.set_num_threads, and is passed to every parallel region).
// Each kernel is written once over `real` (real.h) and exported as _f32 and _f64.
// `=` after an output means it is overwritten, `+=` that it is accumulated into.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ft_reduction { FT_REDUCTION_NONE = 0, FT_REDUCTION_MEAN = 1, FT_REDUCTION_SUM = 2 };

// ----------------------------------------------------------------------------------------------
// softmax cross-entropy, forward and backward fused (crossentropy.c)
//   dlogits (N,V) =  gradient of the reduced loss w.r.t. logits; may be the logits buffer itself
//   losses  (N,)  =  per-row loss, 0 for rows whose target is ignore_index
//   logits  (N,V)    targets (N,) in [0,V) or == ignore_index
//   weight (V,) class weights or NULL; lse_square_scale the z-loss (0: none); softcap > 0 caps
//   the logits at softcap * tanh(logits / softcap) (0: no cap); grad_rows (N,) or NULL, with
//   FT_REDUCTION_NONE only: dlogits row i is that of grad_rows[i] * losses[i]
// Returns the mean (the kept rows' weighted cross-entropy over their summed weight, plus their
// mean z-loss; NaN if there are none) or the sum of the row losses; 0 for FT_REDUCTION_NONE,
// where `losses` is the result.
double ft_crossentropy_f32(float *dlogits, float *losses, const float *logits, const int64_t *targets,
                           int64_t N, int64_t V, int64_t ignore_index, int reduction,
                           double label_smoothing, const float *weight, double lse_square_scale,
                           double softcap, const float *grad_rows, int nthreads);
double ft_crossentropy_f64(double *dlogits, double *losses, const double *logits,
                           const int64_t *targets, int64_t N, int64_t V, int64_t ignore_index,
                           int reduction, double label_smoothing, const double *weight,
                           double lse_square_scale, double softcap, const double *grad_rows,
                           int nthreads);

// ----------------------------------------------------------------------------------------------
// linear layer, forward and backward around a BLAS GEMM passed in at run time (linear.c)
// The GEMM has the Fortran BLAS convention (column-major; every argument by pointer); the Python
// side passes scipy.linalg.cython_blas's sgemm/dgemm, so no BLAS is linked at build time.
// `nthreads`: each GEMM's output rows are split over an OpenMP team of nthreads, one GEMM call per
// thread, so the caller must make `gemm` run on the calling thread (fasttrain/threads.py); 1:
// one GEMM call, on the BLAS's own threads. The O(N*OC) bias passes run on the calling thread.
typedef void (*ft_gemm_f32)(const char *transa, const char *transb, const int *m, const int *n,
                            const int *k, const float *alpha, const float *a, const int *lda,
                            const float *b, const int *ldb, const float *beta, float *c,
                            const int *ldc);
typedef void (*ft_gemm_f64)(const char *transa, const char *transb, const int *m, const int *n,
                            const int *k, const double *alpha, const double *a, const int *lda,
                            const double *b, const int *ldb, const double *beta, double *c,
                            const int *ldc);
// `layout`: a set bit means that input is Fortran-ordered (a transposed view, read as it is
// through transa/transb); clear means C-ordered. Outputs are always C-ordered.
enum ft_linear_layout { FT_X_FORTRAN = 1, FT_W_FORTRAN = 2, FT_DY_FORTRAN = 4 };
// Returned when N, C or OC exceeds the BLAS's 32-bit int (nothing is written then); 0 on success.
enum { FT_ERR_BLAS_INT = -1 };
//   y (N,OC) =  x W^T + b
//   x (N,C)     W (OC,C)    b (OC,) or NULL (no bias)
int ft_linear_forward_f32(ft_gemm_f32 gemm, float *y, const float *x, const float *W,
                          const float *b, int64_t N, int64_t C, int64_t OC, int layout,
                          int nthreads);
int ft_linear_forward_f64(ft_gemm_f64 gemm, double *y, const double *x, const double *W,
                          const double *b, int64_t N, int64_t C, int64_t OC, int layout,
                          int nthreads);
//   dx (N,C)  =  dy W                      NULL: not computed
//   dW (OC,C) =  dy^T x   (+= if accumulate)
//   db (OC,)  =  sum over rows of dy  (+= if accumulate)   NULL: not computed
//   x (N,C)   W (OC,C)   dy (N,OC)
int ft_linear_backward_f32(ft_gemm_f32 gemm, float *dx, float *dW, float *db, const float *x,
                           const float *W, const float *dy, int64_t N, int64_t C, int64_t OC,
                           int layout, int accumulate, int nthreads);
int ft_linear_backward_f64(ft_gemm_f64 gemm, double *dx, double *dW, double *db, const double *x,
                           const double *W, const double *dy, int64_t N, int64_t C, int64_t OC,
                           int layout, int accumulate, int nthreads);

// ----------------------------------------------------------------------------------------------
// linear layer + softmax cross-entropy, forward and backward fused by chunks of rows
// (linear_crossentropy.c); the logits exist only chunk_rows at a time, in `work`
//   *loss      =  the reduced loss as ft_crossentropy returns it (0 for FT_REDUCTION_NONE)
//   losses (N,)   =  per-row loss, 0 for rows whose target is ignore_index
//   dx (N,C)      =  dlogits W                          NULL: not computed
//   dW (V,C)      =  dlogits^T x   (+= if accumulate)
//   db (V,)       =  column sums of dlogits  (+= if accumulate)   NULL: not computed
//   work (chunk_rows,V)  scratch (the chunk's logits, then its gradient)
//   x (N,C)   W (V,C)   b (V,) or NULL   targets (N,) in [0,V) or == ignore_index; all C-ordered
//   weight, lse_square_scale, softcap, grad_rows: as for ft_crossentropy (the cap on x W^T + b)
// Returns 0, or FT_ERR_BLAS_INT (nothing written) when N, C or V exceeds BLAS's 32-bit int.
// `nthreads` is the team of the cross-entropy rows between the GEMMs, `gemm_nthreads` that of the
// GEMMs (as `nthreads` of ft_linear_forward).
int ft_linear_crossentropy_f32(ft_gemm_f32 gemm, double *loss, float *losses, float *dx,
                               float *dW, float *db, float *work, const float *x, const float *W,
                               const float *b, const int64_t *targets, int64_t N, int64_t C,
                               int64_t V, int64_t chunk_rows, int64_t ignore_index,
                               int reduction, double label_smoothing, const float *weight,
                               double lse_square_scale, double softcap, const float *grad_rows,
                               int accumulate, int nthreads, int gemm_nthreads);
int ft_linear_crossentropy_f64(ft_gemm_f64 gemm, double *loss, double *losses, double *dx,
                               double *dW, double *db, double *work, const double *x,
                               const double *W, const double *b, const int64_t *targets,
                               int64_t N, int64_t C, int64_t V, int64_t chunk_rows,
                               int64_t ignore_index, int reduction, double label_smoothing,
                               const double *weight, double lse_square_scale, double softcap,
                               const double *grad_rows, int accumulate, int nthreads,
                               int gemm_nthreads);

// ----------------------------------------------------------------------------------------------
// embedding lookup, plain (K = 1) or in bags of K rows summed (embedding.c)
//   out (N,E) = sum over k < K of W[idx[i,k]] rows;   W (V,E);   idx (N,K) each in [0,V)
void ft_embedding_forward_f32(float *out, const float *W, const int64_t *idx, int64_t N, int64_t K,
                              int64_t E, int nthreads);
void ft_embedding_forward_f64(double *out, const double *W, const int64_t *idx, int64_t N,
                              int64_t K, int64_t E, int nthreads);
//   dW (V,E) = (accumulate = 0) or += (accumulate = 1) dout (N,E) rows summed by idx (N,K)
void ft_embedding_backward_f32(float *dW, const float *dout, const int64_t *idx, int64_t N,
                               int64_t K, int64_t V, int64_t E, int accumulate, int nthreads);
void ft_embedding_backward_f64(double *dW, const double *dout, const int64_t *idx, int64_t N,
                               int64_t K, int64_t V, int64_t E, int accumulate, int nthreads);

// ----------------------------------------------------------------------------------------------
// layer normalization over the last axis, forward and backward (layernorm.c)
//   y (N,C) = (x - mean) * rstd * weight + bias; may be x itself
//   mean (N,) =  row means;   rstd (N,) =  1 / sqrt(biased row variance + eps)
//   x (N,C)   weight (C,)   bias (C,);   C >= 1
void ft_layernorm_forward_f32(float *y, float *mean, float *rstd, const float *x,
                              const float *weight, const float *bias, int64_t N, int64_t C,
                              double eps, int nthreads);
void ft_layernorm_forward_f64(double *y, double *mean, double *rstd, const double *x,
                              const double *weight, const double *bias, int64_t N, int64_t C,
                              double eps, int nthreads);
//   dx (N,C)     =  the gradient of x; may be dy itself
//   dweight (C,) =  sum over rows of dy * xhat  (+= if accumulate)
//   dbias (C,)   =  sum over rows of dy         (+= if accumulate)
//   x (N,C)   weight (C,)   mean, rstd (N,) as the forward wrote them   dy (N,C);   C >= 1
// Returns 0, or FT_ERR_NOMEM (nothing written) when its scratch, 1/32 of x's bytes, cannot be had.
// dweight and dbias are the same bits for any thread count (layernorm.c says how).
enum { FT_ERR_NOMEM = -2 };
int ft_layernorm_backward_f32(float *dx, float *dweight, float *dbias, const float *x,
                              const float *weight, const float *mean, const float *rstd,
                              const float *dy, int64_t N, int64_t C, int accumulate,
                              int nthreads);
int ft_layernorm_backward_f64(double *dx, double *dweight, double *dbias, const double *x,
                              const double *weight, const double *mean, const double *rstd,
                              const double *dy, int64_t N, int64_t C, int accumulate,
                              int nthreads);

// ----------------------------------------------------------------------------------------------
// activations, elementwise over n values (tanh.c, gelu.c); in place allowed (y = x, dx = dy)
//   tanh:  y = tanh(x);                 dx = dy * (1 - y^2)        (backward from the output y)
//   gelu:  y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3); dx from x and dy
void ft_tanh_forward_f32(float *y, const float *x, int64_t n, int nthreads);
void ft_tanh_forward_f64(double *y, const double *x, int64_t n, int nthreads);
void ft_tanh_backward_f32(float *dx, const float *y, const float *dy, int64_t n, int nthreads);
void ft_tanh_backward_f64(double *dx, const double *y, const double *dy, int64_t n, int nthreads);
void ft_gelu_forward_f32(float *y, const float *x, int64_t n, int nthreads);
void ft_gelu_forward_f64(double *y, const double *x, int64_t n, int nthreads);
void ft_gelu_backward_f32(float *dx, const float *x, const float *dy, int64_t n, int nthreads);
void ft_gelu_backward_f64(double *dx, const double *x, const double *dy, int64_t n, int nthreads);

// ----------------------------------------------------------------------------------------------
// optimizer steps over one flat buffer of n parameters, in place, in one pass (adamw.c)
//   param (n) =  updated parameters          grad (n)  gradient, multiplied by grad_scale as read
//   m, v  (n) =  AdamW's first and second moments; buf (n) = SGD's momentum buffer (unused, and
//                may be NULL, when momentum == 0)
//   v_max (n) =  AMSGrad's running maximum of v, or NULL for plain AdamW
// The arrays may not overlap. step counts from 1; bias corrections are computed once per call.
// Each element's result is the same bits for any thread count.
void ft_adamw_f32(float *param, float *m, float *v, float *v_max, const float *grad, int64_t n,
                  int64_t step, double lr, double beta1, double beta2, double eps,
                  double weight_decay, double grad_scale, int nthreads);
void ft_adamw_f64(double *param, double *m, double *v, double *v_max, const double *grad,
                  int64_t n, int64_t step, double lr, double beta1, double beta2, double eps,
                  double weight_decay, double grad_scale, int nthreads);
void ft_sgd_f32(float *param, float *buf, const float *grad, int64_t n, double lr,
                double momentum, double dampening, int nesterov, double weight_decay,
                double grad_scale, int nthreads);
void ft_sgd_f64(double *param, double *buf, const double *grad, int64_t n, double lr,
                double momentum, double dampening, int nesterov, double weight_decay,
                double grad_scale, int nthreads);
// Returns sum_i x_i^2 of x (n), accumulated in double; the same bits for any thread count.
double ft_sum_of_squares_f32(const float *x, int64_t n, int nthreads);
double ft_sum_of_squares_f64(const double *x, int64_t n, int nthreads);

// ----------------------------------------------------------------------------------------------
// causal (or full) multi-head self-attention, flash-style: blocks of queries against blocks of
// keys, an online softmax, the (T,T) scores never stored (attention.c)
//   qkv (B,T,3C): q, k, v the thirds of the last axis, head h their columns [h*hs, (h+1)*hs),
//   hs = C/NH;  out, dout (B,T,C) the heads side by side;  lse (B,NH,T) log-sum-exp of each
//   scaled softmax row;  work (nthreads, ft_attention_work(T, hs, backward)) per-thread scratch.
// Returns 0. Each output element is the same bits for any thread count.
int64_t ft_attention_work_f32(int64_t T, int64_t hs, int backward);  // reals per thread
int64_t ft_attention_work_f64(int64_t T, int64_t hs, int backward);
//   out (B,T,C) =, lse (B,NH,T) =;  scale multiplies q k^T; causal: key j > query i masked
int ft_attention_forward_f32(float *out, float *lse, float *work, const float *qkv, int64_t B,
                             int64_t T, int64_t C, int64_t NH, int causal, double scale,
                             int nthreads);
int ft_attention_forward_f64(double *out, double *lse, double *work, const double *qkv,
                             int64_t B, int64_t T, int64_t C, int64_t NH, int causal,
                             double scale, int nthreads);
//   dqkv (B,T,3C) =  the gradient w.r.t. qkv, from the forward's out and lse and dout
int ft_attention_backward_f32(float *dqkv, float *work, const float *qkv, const float *out,
                              const float *lse, const float *dout, int64_t B, int64_t T,
                              int64_t C, int64_t NH, int causal, double scale, int nthreads);
int ft_attention_backward_f64(double *dqkv, double *work, const double *qkv, const double *out,
                              const double *lse, const double *dout, int64_t B, int64_t T,
                              int64_t C, int64_t NH, int causal, double scale, int nthreads);

// ----------------------------------------------------------------------------------------------
// run-time facts for `fasttrain info` and the benchmarks (runtime.c)
const char *ft_simd_level(void);  // the target_clones variant this CPU runs: "avx512", "avx2", "baseline"
int ft_openmp_version(void);      // _OPENMP (yyyymm) the library was built with; 0 without OpenMP
int ft_vector_exp(void);          // 1 if float64 exp is vectorised through glibc's libmvec (float32 always is)
// a (n,) *= s, in parallel: an in-place streaming read+write, the bandwidth probe of the benchmarks
void ft_stream_scale_f32(float *a, int64_t n, float s, int nthreads);
// runs one empty OpenMP region of nthreads on the calling thread (fasttrain/threads.py: why)
void ft_openmp_park_team(int nthreads);

#ifdef __cplusplus
}
#endif
