// embedding.c: embedding lookup, forward (gather rows) and backward (scatter-add rows), plain
// or in bags of K rows summed.
//
// Matches src/fasttrain/kernels/ref/embedding.py and torch.nn.functional.embedding (K = 1) or
// embedding_bag(mode="sum") (each output row the sum of K rows), with their autograd gradients.
// idx (N, K) with every value in [0, V) (the Python front checks); W and dW (V, E);
// out and dout (N, E).
//   forward:  out[i, :] = sum over k < K of W[idx[i, k], :]
//   backward: dW[v, :] (= or +=) sum over (i, k) with idx[i, k] == v of dout[i, :]
// The backward is parallel over columns: each thread owns a contiguous range of the E columns
// and walks all N indices in order, so no two threads write the same element, no atomics are
// needed, and every element is summed in the same order for any thread count (same bits).
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fasttrain.h"
#include "real.h"

#define PARALLEL_MIN (1 << 15)

FT_CLONES static void FT_FN(add_row)(real *restrict dst, const real *restrict src, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) dst[j] += src[j];
}

void FT_FN(ft_embedding_forward)(real *out, const real *W, const int64_t *idx, int64_t N,
                                 int64_t K, int64_t E, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (N * K * E >= PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        real *row = out + i * E;
        const int64_t *bag = idx + i * K;
        memcpy(row, W + bag[0] * E, (size_t)E * sizeof(real));
        for (int64_t k = 1; k < K; k++) FT_FN(add_row)(row, W + bag[k] * E, E);
    }
}

void FT_FN(ft_embedding_backward)(real *dW, const real *dout, const int64_t *idx, int64_t N,
                                  int64_t K, int64_t V, int64_t E, int accumulate, int nthreads) {
    if (!accumulate) memset(dW, 0, (size_t)(V * E) * sizeof(real));
#pragma omp parallel num_threads(nthreads) if (N * K * E >= PARALLEL_MIN)
    {
        int64_t nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        const int64_t lo = E * t / nt, hi = E * (t + 1) / nt;  // this thread's columns
        if (hi > lo)
            for (int64_t i = 0; i < N; i++)
                for (int64_t k = 0; k < K; k++)
                    FT_FN(add_row)(dW + idx[i * K + k] * E + lo, dout + i * E + lo, hi - lo);
    }
}
