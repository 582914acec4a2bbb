# csrc.pxd: csrc/fasttrain.h as Cython sees it. Shapes and contracts are documented there.
from libc.stdint cimport int64_t

cdef extern from "fasttrain.h" nogil:
    enum:
        FT_REDUCTION_NONE
        FT_REDUCTION_MEAN
        FT_REDUCTION_SUM

    double ft_crossentropy_f32(float *dlogits, float *losses, const float *logits,
                               const int64_t *targets, int64_t N, int64_t V, int64_t ignore_index,
                               int reduction, double label_smoothing, const float *weight,
                               double lse_square_scale, double softcap, const float *grad_rows,
                               int nthreads)
    double ft_crossentropy_f64(double *dlogits, double *losses, const double *logits,
                               const int64_t *targets, int64_t N, int64_t V, int64_t ignore_index,
                               int reduction, double label_smoothing, const double *weight,
                               double lse_square_scale, double softcap, const double *grad_rows,
                               int nthreads)

    ctypedef void (*ft_gemm_f32)(const char *transa, const char *transb, const int *m,
                                 const int *n, const int *k, const float *alpha, const float *a,
                                 const int *lda, const float *b, const int *ldb,
                                 const float *beta, float *c, const int *ldc)
    ctypedef void (*ft_gemm_f64)(const char *transa, const char *transb, const int *m,
                                 const int *n, const int *k, const double *alpha,
                                 const double *a, const int *lda, const double *b,
                                 const int *ldb, const double *beta, double *c, const int *ldc)
    enum:
        FT_X_FORTRAN
        FT_W_FORTRAN
        FT_DY_FORTRAN
        FT_ERR_BLAS_INT
    int ft_linear_forward_f32(ft_gemm_f32 gemm, float *y, const float *x, const float *W,
                              const float *b, int64_t N, int64_t C, int64_t OC, int layout,
                              int nthreads)
    int ft_linear_forward_f64(ft_gemm_f64 gemm, double *y, const double *x, const double *W,
                              const double *b, int64_t N, int64_t C, int64_t OC, int layout,
                              int nthreads)
    int ft_linear_backward_f32(ft_gemm_f32 gemm, float *dx, float *dW, float *db,
                               const float *x, const float *W, const float *dy, int64_t N,
                               int64_t C, int64_t OC, int layout, int accumulate, int nthreads)
    int ft_linear_backward_f64(ft_gemm_f64 gemm, double *dx, double *dW, double *db,
                               const double *x, const double *W, const double *dy, int64_t N,
                               int64_t C, int64_t OC, int layout, int accumulate, int nthreads)

    int ft_linear_crossentropy_f32(ft_gemm_f32 gemm, double *loss, float *losses, float *dx,
                                   float *dW, float *db, float *work, const float *x,
                                   const float *W, const float *b, const int64_t *targets,
                                   int64_t N, int64_t C, int64_t V, int64_t chunk_rows,
                                   int64_t ignore_index, int reduction, double label_smoothing,
                                   const float *weight, double lse_square_scale, double softcap,
                                   const float *grad_rows, int accumulate, int nthreads,
                                   int gemm_nthreads)
    int ft_linear_crossentropy_f64(ft_gemm_f64 gemm, double *loss, double *losses, double *dx,
                                   double *dW, double *db, double *work, const double *x,
                                   const double *W, const double *b, const int64_t *targets,
                                   int64_t N, int64_t C, int64_t V, int64_t chunk_rows,
                                   int64_t ignore_index, int reduction, double label_smoothing,
                                   const double *weight, double lse_square_scale, double softcap,
                                   const double *grad_rows, int accumulate, int nthreads,
                                   int gemm_nthreads)

    void ft_adamw_f32(float *param, float *m, float *v, float *v_max, const float *grad, int64_t n,
                      int64_t step, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double grad_scale, int nthreads)
    void ft_adamw_f64(double *param, double *m, double *v, double *v_max, const double *grad,
                      int64_t n, int64_t step, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double grad_scale, int nthreads)
    void ft_sgd_f32(float *param, float *buf, const float *grad, int64_t n, double lr,
                    double momentum, double dampening, int nesterov, double weight_decay,
                    double grad_scale, int nthreads)
    void ft_sgd_f64(double *param, double *buf, const double *grad, int64_t n, double lr,
                    double momentum, double dampening, int nesterov, double weight_decay,
                    double grad_scale, int nthreads)
    double ft_sum_of_squares_f32(const float *x, int64_t n, int nthreads)
    double ft_sum_of_squares_f64(const double *x, int64_t n, int nthreads)

    int64_t ft_attention_work_f32(int64_t T, int64_t hs, int backward)
    int64_t ft_attention_work_f64(int64_t T, int64_t hs, int backward)
    int ft_attention_forward_f32(float *out, float *lse, float *work, const float *qkv, int64_t B,
                                 int64_t T, int64_t C, int64_t NH, int causal, double scale,
                                 int nthreads)
    int ft_attention_forward_f64(double *out, double *lse, double *work, const double *qkv,
                                 int64_t B, int64_t T, int64_t C, int64_t NH, int causal,
                                 double scale, int nthreads)
    int ft_attention_backward_f32(float *dqkv, float *work, const float *qkv, const float *out,
                                  const float *lse, const float *dout, int64_t B, int64_t T,
                                  int64_t C, int64_t NH, int causal, double scale, int nthreads)
    int ft_attention_backward_f64(double *dqkv, double *work, const double *qkv,
                                  const double *out, const double *lse, const double *dout,
                                  int64_t B, int64_t T, int64_t C, int64_t NH, int causal,
                                  double scale, int nthreads)

    const char *ft_simd_level()
    int ft_openmp_version()
    int ft_vector_exp()
    void ft_stream_scale_f32(float *a, int64_t n, float s, int nthreads)
    void ft_openmp_park_team(int nthreads) nogil

    void ft_embedding_forward_f32(float *out, const float *W, const int64_t *idx, int64_t N,
                                  int64_t K, int64_t E, int nthreads)
    void ft_embedding_forward_f64(double *out, const double *W, const int64_t *idx, int64_t N,
                                  int64_t K, int64_t E, int nthreads)
    void ft_embedding_backward_f32(float *dW, const float *dout, const int64_t *idx, int64_t N,
                                   int64_t K, int64_t V, int64_t E, int accumulate, int nthreads)
    void ft_embedding_backward_f64(double *dW, const double *dout, const int64_t *idx, int64_t N,
                                   int64_t K, int64_t V, int64_t E, int accumulate, int nthreads)

    enum:
        FT_ERR_NOMEM
    void ft_layernorm_forward_f32(float *y, float *mean, float *rstd, const float *x,
                                  const float *weight, const float *bias, int64_t N, int64_t C,
                                  double eps, int nthreads)
    void ft_layernorm_forward_f64(double *y, double *mean, double *rstd, const double *x,
                                  const double *weight, const double *bias, int64_t N,
                                  int64_t C, double eps, int nthreads)
    int ft_layernorm_backward_f32(float *dx, float *dweight, float *dbias, const float *x,
                                  const float *weight, const float *mean, const float *rstd,
                                  const float *dy, int64_t N, int64_t C, int accumulate,
                                  int nthreads)
    int ft_layernorm_backward_f64(double *dx, double *dweight, double *dbias, const double *x,
                                  const double *weight, const double *mean, const double *rstd,
                                  const double *dy, int64_t N, int64_t C, int accumulate,
                                  int nthreads)

    void ft_tanh_forward_f32(float *y, const float *x, int64_t n, int nthreads)
    void ft_tanh_forward_f64(double *y, const double *x, int64_t n, int nthreads)
    void ft_tanh_backward_f32(float *dx, const float *y, const float *dy, int64_t n, int nthreads)
    void ft_tanh_backward_f64(double *dx, const double *y, const double *dy, int64_t n,
                              int nthreads)
    void ft_gelu_forward_f32(float *y, const float *x, int64_t n, int nthreads)
    void ft_gelu_forward_f64(double *y, const double *x, int64_t n, int nthreads)
    void ft_gelu_backward_f32(float *dx, const float *x, const float *dy, int64_t n, int nthreads)
    void ft_gelu_backward_f64(double *dx, const double *x, const double *dy, int64_t n,
                              int nthreads)
