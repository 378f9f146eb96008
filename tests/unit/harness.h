/* A minimal unit-test harness: CHECK counts failures and says where; each test program ends with
 * `return test_summary("name");`, which prints "name: N passed, N failed". */
#ifndef OSP_TEST_HARNESS_H
#define OSP_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>

static int test_checks_passed, test_checks_failed;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (cond) {                                                            \
      test_checks_passed++;                                                \
    } else {                                                               \
      test_checks_failed++;                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

/* |got − want| ≤ tol · max(1, |want|) */
#define CHECK_NEAR(got, want, tol)                                                            \
  do {                                                                                        \
    double g_ = (got), w_ = (want);                                                           \
    if (fabs(g_ - w_) <= (tol) * fmax(1.0, fabs(w_))) {                                       \
      test_checks_passed++;                                                                   \
    } else {                                                                                  \
      test_checks_failed++;                                                                   \
      fprintf(stderr, "%s:%d: %s = %.9g, expected %.9g\n", __FILE__, __LINE__, #got, g_, w_); \
    }                                                                                         \
  } while (0)

static inline int test_summary(const char *name) {
  printf("%s: %d passed, %d failed\n", name, test_checks_passed, test_checks_failed);
  return test_checks_failed ? 1 : 0;
}

#endif
