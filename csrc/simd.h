// simd.h: how the kernels reach AVX2 / AVX-512 without -march=native.
//
// FT_CLONES on a function makes GCC emit an x86-64-v4 (AVX-512), an x86-64-v3 (AVX2 + FMA) and a
// baseline copy, and pick one through an ifunc when the library loads; fasttrain info reports the
// pick (ft_simd_level in runtime.c). We put it on the row-level functions, not on functions that
// open an OpenMP region: GCC outlines the region's body into a function of its own, which would
// not inherit the clones.
//
// Vector exp in float64: glibc's libmvec has SIMD variants of exp (_ZGVdN4v_exp and friends), but
// math.h declares them only under -ffast-math, which we must not use (with GCC 12 it links
// crtfastmath.o and sets flush-to-zero for the whole Python process). Declaring exp ourselves
// with `omp declare simd` lets an `omp simd` loop call the vector variant of the CPU's clone.
// CMakeLists.txt defines FT_HAVE_LIBMVEC only when libmvec is there to link. (float32 uses the
// inline ft_vexpf of vmath.h instead.)
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FT_NO_CLONES)
#define FT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FT_CLONES
#endif

#if defined(FT_HAVE_LIBMVEC)
#pragma omp declare simd notinbranch
double exp(double);
#endif
