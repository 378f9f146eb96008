/* Logging to stderr with a level; OSP_LOG=debug|info|warn|error sets the threshold. */
#ifndef OSP_CORE_LOG_H
#define OSP_CORE_LOG_H

typedef enum { OSP_LOG_DEBUG, OSP_LOG_INFO, OSP_LOG_WARN, OSP_LOG_ERROR } osp_log_level;

void osp_log_set_level(osp_log_level level);
void osp_log(osp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define osp_debug(...) osp_log(OSP_LOG_DEBUG, __VA_ARGS__)
#define osp_info(...) osp_log(OSP_LOG_INFO, __VA_ARGS__)
#define osp_warn(...) osp_log(OSP_LOG_WARN, __VA_ARGS__)

#endif
