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

    const char *ft_simd_level()
    int ft_openmp_version()
    int ft_vector_exp()
    void ft_stream_scale_f32(float *a, int64_t n, float s, int nthreads)

    void ft_embedding_forward_f32(float *out, const float *W, const int64_t *idx, int64_t N,
                                  int64_t E, int nthreads)
    void ft_embedding_forward_f64(double *out, const double *W, const int64_t *idx, int64_t N,
                                  int64_t E, int nthreads)
    void ft_embedding_backward_f32(float *dW, const float *dout, const int64_t *idx, int64_t N,
                                   int64_t V, int64_t E, int accumulate, int nthreads)
    void ft_embedding_backward_f64(double *dW, const double *dout, const int64_t *idx, int64_t N,
                                   int64_t V, int64_t E, int accumulate, int nthreads)

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
