# csrc.pxd: csrc/fasttrain.h as Cython sees it. Shapes and contracts are documented there.
from libc.stdint cimport int64_t

cdef extern from "fasttrain.h" nogil:
    enum:
        FT_REDUCTION_NONE
        FT_REDUCTION_MEAN
        FT_REDUCTION_SUM

    double ft_crossentropy_f32(float *dlogits, float *losses, const float *logits,
                               const int64_t *targets, int64_t N, int64_t V, int64_t ignore_index,
                               int reduction, double label_smoothing, int nthreads)
    double ft_crossentropy_f64(double *dlogits, double *losses, const double *logits,
                               const int64_t *targets, int64_t N, int64_t V, int64_t ignore_index,
                               int reduction, double label_smoothing, int nthreads)

    void ft_adamw_f32(float *param, float *m, float *v, const float *grad, int64_t n,
                      int64_t step, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double grad_scale, int nthreads)
    void ft_adamw_f64(double *param, double *m, double *v, const double *grad, int64_t n,
                      int64_t step, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double grad_scale, int nthreads)
    void ft_sgd_f32(float *param, float *buf, const float *grad, int64_t n, double lr,
                    double momentum, int nesterov, double weight_decay, double grad_scale,
                    int nthreads)
    void ft_sgd_f64(double *param, double *buf, const double *grad, int64_t n, double lr,
                    double momentum, int nesterov, double weight_decay, double grad_scale,
                    int nthreads)
    double ft_sum_of_squares_f32(const float *x, int64_t n, int nthreads)
    double ft_sum_of_squares_f64(const double *x, int64_t n, int nthreads)

    const char *ft_simd_level()
    int ft_openmp_version()
    int ft_vector_exp()
    void ft_stream_scale_f32(float *a, int64_t n, float s, int nthreads)
