/*
 * fx_platform.h -- what the build and the CPU offer, asked at run time.
 *
 * The same Cython source is compiled with and without OpenMP and for several
 * instruction sets; these helpers let the Python layer report and choose.
 */
#ifndef FX_PLATFORM_H
#define FX_PLATFORM_H

#ifdef _OPENMP
#include <omp.h>
#define FX_OPENMP 1
static inline int fx_max_threads(void) { return omp_get_max_threads(); }
#else
#define FX_OPENMP 0
static inline int fx_max_threads(void) { return 1; }
#endif

/* 1 when the CPU and the OS support AVX2, FMA and F16C (the avx2 module's flags) */
static inline int fx_cpu_has_avx2_fma(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

/* 1 when the CPU and the OS (its saving of the zmm and mask registers)
 * support the avx512 module's flags: AVX2, FMA, F16C and AVX-512 F, VL, BW
 * and DQ, which every AVX-512 CPU since Skylake-SP has */
static inline int fx_cpu_has_avx512(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return fx_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

#endif /* FX_PLATFORM_H */
