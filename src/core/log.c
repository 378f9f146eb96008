#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int threshold = -1; /* -1: not yet read from OSP_LOG */

void osp_log_set_level(osp_log_level level) { threshold = (int)level; }

static int level_from_environment(void) {
  const char *v = getenv("OSP_LOG");
  if (!v) return OSP_LOG_INFO;
  if (!strcmp(v, "debug")) return OSP_LOG_DEBUG;
  if (!strcmp(v, "warn")) return OSP_LOG_WARN;
  if (!strcmp(v, "error")) return OSP_LOG_ERROR;
  return OSP_LOG_INFO;
}

void osp_log(osp_log_level level, const char *fmt, ...) {
  if (threshold < 0) threshold = level_from_environment();
  if ((int)level < threshold) return;
  static const char *const prefix[] = {"debug: ", "", "warning: ", "error: "};
  fputs("osp: ", stderr);
  fputs(prefix[level], stderr);
  va_list args;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
}
