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

/* For a program's main(): when OpenBLAS chose weaker kernels than the CPU allows, set
 * OPENBLAS_CORETYPE and restart the program (execv of /proc/self/exe with argv). Returns only if
 * no restart is needed, the user set OPENBLAS_CORETYPE already, or the restart failed (warned). */
void osp_cpu_blas_use_best_kernels(char **argv);

#endif
