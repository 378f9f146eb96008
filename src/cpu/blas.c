#include "cpu/blas.h"

#include <cblas.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

const char *osp_cpu_blas_core(void) { return openblas_get_corename(); }

/* 3: AVX-512 kernels, 2: AVX2, 1: AVX, 0: older or unknown. */
static int core_rank(const char *name) {
  static const struct {
    const char *name;
    int rank;
  } ranks[] = {{"skylakex", 3}, {"cooperlake", 3}, {"sapphirerapids", 3}, {"haswell", 2},
               {"zen", 2},      {"sandybridge", 1}};
  char lower[32] = {0};
  for (size_t i = 0; name[i] && i + 1 < sizeof lower; i++) lower[i] = (char)tolower((unsigned char)name[i]);
  for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++)
    if (!strcmp(lower, ranks[i].name)) return ranks[i].rank;
  return 0;
}

const char *osp_cpu_blas_better_core(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const char *best = NULL;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    best = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    best = "Haswell";
  if (best && core_rank(osp_cpu_blas_core()) < core_rank(best)) return best;
#endif
  return NULL;
}

void osp_cpu_blas_use_best_kernels(char **argv) {
  const char *core = osp_cpu_blas_better_core();
  if (!core || getenv("OPENBLAS_CORETYPE")) return;
  osp_debug("OpenBLAS chose %s kernels; restarting with OPENBLAS_CORETYPE=%s", osp_cpu_blas_core(), core);
  setenv("OPENBLAS_CORETYPE", core, 1);
  execv("/proc/self/exe", argv);
  osp_warn("could not restart with OPENBLAS_CORETYPE=%s: matmuls use the slower %s kernels", core,
           osp_cpu_blas_core());
}
