/* Which OpenBLAS kernels run. OpenBLAS picks them by CPU model when it loads; Debian 12's 0.3.21
 * does not know CPUs newer than itself (e.g. family 6 model 207) and falls back to SSE3 "Prescott"
 * kernels, about 4x slower than the AVX-512 ones the CPU can run. It reads OPENBLAS_CORETYPE only
 * at load time, so the program (tools/osp.c) sets it and restarts itself. */
#ifndef OSP_CPU_BLAS_H
#define OSP_CPU_BLAS_H

/* The kernel set OpenBLAS chose ("SkylakeX", "Haswell", "Prescott", ...). */
const char *osp_cpu_blas_core(void);

/* The OPENBLAS_CORETYPE this CPU's features allow when OpenBLAS chose a weaker one, else NULL. */
const char *osp_cpu_blas_better_core(void);

#endif
