#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { MESSAGE_BYTES = 2048 };
static _Thread_local char last_error[MESSAGE_BYTES];

const char *osp_last_error(void) { return last_error[0] ? last_error : "no error"; }

const char *osp_version(void) { return OSP_VERSION; }

const char *osp_status_name(osp_status status) {
  switch (status) {
    case OSP_OK: return "ok";
    case OSP_ERR_ARGUMENT: return "bad argument";
    case OSP_ERR_IO: return "i/o error";
    case OSP_ERR_FORMAT: return "bad format";
    case OSP_ERR_SHAPE: return "bad shape";
    case OSP_ERR_MISSING: return "missing";
    case OSP_ERR_MEMORY: return "out of memory";
    case OSP_ERR_UNSUPPORTED: return "unsupported";
    case OSP_ERR_NUMERIC: return "not finite";
  }
  return "unknown status";
}

osp_status osp_fail(osp_status status, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, args);
  va_end(args);
  return status;
}

osp_status osp_fail_context(osp_status status, const char *fmt, ...) {
  char previous[MESSAGE_BYTES];
  memcpy(previous, last_error, sizeof previous);
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(last_error, sizeof last_error, fmt, args);
  va_end(args);
  size_t at = n < 0 ? 0 : (size_t)n;
  if (at + 3 >= sizeof last_error) return status; /* the context alone fills the message */
  memcpy(last_error + at, ": ", 2);
  at += 2;
  size_t length = strnlen(previous, sizeof last_error - at - 1);
  memcpy(last_error + at, previous, length);
  last_error[at + length] = '\0';
  return status;
}
