// runtime.c: what the library was built with and what this CPU runs; the bandwidth probe.
// Compiled once (not per precision). Nothing here is on a training path.
#include <stdint.h>
#include "fasttrain.h"
#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif

const char *ft_simd_level(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FT_NO_CLONES)
    // The same test GCC's target_clones resolver makes (simd.h), so this names the copy that runs.
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "avx512";
    if (__builtin_cpu_supports("x86-64-v3")) return "avx2";
    return "baseline";
#else
    return "baseline (built without function clones)";
#endif
}

int ft_openmp_version(void) {
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}

int ft_vector_exp(void) {
#ifdef FT_HAVE_LIBMVEC
    return 1;
#else
    return 0;
#endif
}

void ft_openmp_park_team(int nthreads) {
    // An empty region: libgomp gives the calling thread a pool of nthreads - 1 workers, which
    // stay (asleep) for as long as that thread lives. fasttrain/threads.py says why.
    int sink = 0;
#pragma omp parallel num_threads(nthreads)
    {
#pragma omp atomic
        sink += 1;
    }
    (void)sink;
}

FT_CLONES static void stream_scale_chunk(float *a, int64_t n, float s) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) a[i] *= s;
}

void ft_stream_scale_f32(float *a, int64_t n, float s, int nthreads) {
    // Each thread takes one contiguous chunk, so the pages it touches stay its own.
#pragma omp parallel num_threads(nthreads)
    {
        int64_t nt = 1, id = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        id = omp_get_thread_num();
#endif
        const int64_t lo = n * id / nt, hi = n * (id + 1) / nt;
        stream_scale_chunk(a + lo, hi - lo, s);
    }
}
