// real.h: the one piece of template machinery in csrc/.
//
// A kernel is written once over the type `real` and compiled twice by CMakeLists.txt:
//   -DFT_F32: real = float,  FT_FN(ft_x) = ft_x_f32, EXP = ft_vexpf (vmath.h), LOG = logf
//   -DFT_F64: real = double, FT_FN(ft_x) = ft_x_f64, EXP = exp (libmvec's in SIMD loops), LOG = log
//   (TANH: ft_vtanhf for float, libm's tanh for double)
// so that float32 (the fast path) and float64 (gradient checks) run the same source line for line.
#pragma once
#include <math.h>
#include <stdint.h>
#include "simd.h"
#include "vmath.h"

#if defined(FT_F32)
typedef float real;
#define FT_FN(name) name##_f32
#define EXP ft_vexpf
#define TANH ft_vtanhf
#define LOG logf
#define SQRT sqrtf
#elif defined(FT_F64)
typedef double real;
#define FT_FN(name) name##_f64
#define EXP exp
#define TANH tanh
#define LOG log
#define SQRT sqrt
#else
#error "compile kernels with -DFT_F32 or -DFT_F64 (see CMakeLists.txt)"
#endif
