/* OSP: a C11 + CUDA engine for sparse video diffusion transformers.
 * The public API: small and stable. Everything under src/ is internal. */
#ifndef OSP_H
#define OSP_H

#ifdef __cplusplus
extern "C" {
#endif

#define OSP_VERSION "0.1.0"

/* Every function that can fail returns an osp_status; the message of the last failure on the
 * calling thread (which file, which tensor, what was expected and what was found) is
 * osp_last_error(). */
typedef enum osp_status {
  OSP_OK = 0,
  OSP_ERR_ARGUMENT,    /* a caller passed something unusable (flag, option, value) */
  OSP_ERR_IO,          /* a file could not be opened, read, written or renamed */
  OSP_ERR_FORMAT,      /* a file is malformed (safetensors header, JSON, truncation) */
  OSP_ERR_SHAPE,       /* a tensor has the wrong shape or dtype */
  OSP_ERR_MISSING,     /* a required tensor or key is absent */
  OSP_ERR_MEMORY,      /* an allocation or an arena ran out */
  OSP_ERR_UNSUPPORTED, /* valid, but not something this build can do */
  OSP_ERR_NUMERIC      /* NaN or Inf where finite numbers are required */
} osp_status;

const char *osp_status_name(osp_status status);
const char *osp_last_error(void);
const char *osp_version(void);

#ifdef __cplusplus
}
#endif
#endif
