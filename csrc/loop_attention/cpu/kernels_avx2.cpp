// The CPU kernels compiled for AVX2 + FMA (x86-64); chosen at run time by dispatch.cpp.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
// The target pragma enables the instructions but not the macros that headers test for them.
#define __AVX__ 1
#define __AVX2__ 1
#define __FMA__ 1
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#define IQ_ISA avx2
#include "kernels.h"
#include "isa_entry_points.h"
#endif
