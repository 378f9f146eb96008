/* Errors are values: a failing function records a message and returns its status. */
#ifndef OSP_CORE_STATUS_H
#define OSP_CORE_STATUS_H

#include "osp.h"

/* Records a printf-style message as the thread's last error and returns `status`, so a failure
 * reads: return osp_fail(OSP_ERR_SHAPE, "%s: tensor '%s' ...", path, name); */
osp_status osp_fail(osp_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current last error with more context ("loading W.safetensors: <old message>"). */
osp_status osp_fail_context(osp_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define OSP_TRY(expr)                 \
  do {                                \
    osp_status osp_try_ = (expr);     \
    if (osp_try_ != OSP_OK) return osp_try_; \
  } while (0)

#endif
