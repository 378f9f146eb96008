/* What every op does before its kernel runs: check each operand (present, dtype, device, layout,
 * shape, overlap) with a message "op: operand: what was expected, what was found", then pick the
 * backend of the operands' device. Internal to src/ops/. */
#ifndef OSP_OPS_CHECK_H
#define OSP_OPS_CHECK_H

#include <stdint.h>

#include "core/tensor.h"
#include "cpu/cpu.h"
#ifdef OSP_HAVE_CUDA
#include "cuda/cuda.h"
#endif

/* One op call being checked. The first operand checked fixes the device of the call; every
 * later one must be on it too. Start one with OPS_CALL("osp_linear"). */
typedef struct {
  const char *op;
  const char *device_owner; /* the operand that fixed the device; NULL before the first */
  osp_device device;
} ops_call;

#define OPS_CALL(op_name) ((ops_call){.op = (op_name)})

typedef enum {
  OPS_CONTIGUOUS,  /* row-major, no gaps */
  OPS_STRIDED_ROWS /* each row's elements adjacent (last stride 1), rows anywhere: a table's rows */
} ops_layout;

/* The operand is present, has `dtype`, sits on the call's device, has at least one dimension,
 * none of them empty, and the given layout. */
osp_status ops_check_operand(ops_call *call, const char *name, const osp_tensor *t, osp_dtype dtype,
                             ops_layout layout);

/* As ops_check_operand for an operand of any dtype. */
osp_status ops_check_present(ops_call *call, const char *name, const osp_tensor *t, ops_layout layout);

/* As ops_check_operand for a floating operand in the dtype its device computes in: f32 on the CPU,
 * bf16 or f32 on CUDA. */
osp_status ops_check_float(ops_call *call, const char *name, const osp_tensor *t, ops_layout layout);

/* On CUDA, the operand has exactly `dtype` (for kernels that take only one, like cuBLASLt's bf16
 * matrices); on the CPU nothing more to check. */
osp_status ops_check_cuda_dtype(const ops_call *call, const char *name, const osp_tensor *t,
                                osp_dtype dtype);

/* osp_check_shape with the message prefixed by the op: a −1 in `shape` matches any size. */
osp_status ops_check_shape(const ops_call *call, const char *name, const osp_tensor *t, int ndim,
                           const int64_t *shape);

/* t has the shape of `like` except for its last dimension, which is `last`. */
osp_status ops_check_shape_as(const ops_call *call, const char *name, const osp_tensor *t,
                              const osp_tensor *like, int64_t last);

/* The two operands share no byte of memory. */
osp_status ops_check_disjoint(const ops_call *call, const char *name, const osp_tensor *t,
                              const char *other_name, const osp_tensor *other);
/* Either t is `other` itself (an in-place call) or the two share no memory. */
osp_status ops_check_in_place_or_disjoint(const ops_call *call, const char *name,
                                          const osp_tensor *t, const char *other_name,
                                          const osp_tensor *other);

/* The operands x and y of a row-wise or element-wise op: both contiguous floats of one shape (their
 * dtypes may differ on CUDA), y either x itself (in place) or apart from it. */
osp_status ops_check_in_out(ops_call *call, const osp_tensor *x, const osp_tensor *y);

/* The operand as a host tensor, for checks that read its values (index tables, positions): t
 * itself on the CPU; on CUDA a copy in host memory (a small table beside the rows it governs).
 * Give it back with ops_release_host_copy. */
osp_status ops_host_copy(const ops_call *call, const char *name, const osp_tensor *t, osp_tensor *host);
void ops_release_host_copy(const osp_tensor *t, osp_tensor *host);

/* A size the CPU backend passes to OpenBLAS, whose sizes are 32-bit ints. */
osp_status ops_check_blas_size(const ops_call *call, const char *what, int64_t size);

/* The backend of the call's device is there: always the CPU; CUDA where this build has the CUDA
 * backend and the machine a GPU (it is initialised on first use). Otherwise OSP_ERR_UNSUPPORTED.
 * After it, an op runs `if (call.device == OSP_CUDA) return osp_cuda_...;` under OSP_HAVE_CUDA,
 * then its CPU kernel. */
osp_status ops_check_backend(const ops_call *call);

/* Refuses a call on a device whose kernels for this op do not exist yet (OSP_ERR_UNSUPPORTED, the
 * message names the op and the device). */
osp_status ops_require_cpu(const ops_call *call);

/* A CUDA kernel where this build has the backend, NULL where it has not (for ops that take their
 * kernels as arguments; ops_check_backend refuses CUDA operands there first). */
#ifdef OSP_HAVE_CUDA
#define OPS_CUDA_KERNEL(kernel) (kernel)
#else
#define OPS_CUDA_KERNEL(kernel) NULL
#endif

/* ---- Checks that several ops share (check_operands.c) ------------------------------------- */

/* Token tensors and their per-batch-row tables (modulation, gates). */

/* x is [B, N, C], contiguous, floating. */
osp_status ops_check_tokens(ops_call *call, const char *name, const osp_tensor *x);

/* A per-(batch, channel) operand [Bm, C] of x [B, N, C] with Bm dividing B: a row of a [Bm, k, C]
 * table is fine. */
osp_status ops_check_table_row(ops_call *call, const char *name, const osp_tensor *t,
                               const osp_tensor *x);

/* A checked table row (or NULL: absent) as the kernels take it. */
osp_cpu_rows ops_cpu_rows(const osp_tensor *t);
#ifdef OSP_HAVE_CUDA
osp_cuda_rows ops_cuda_rows(const osp_tensor *t);
#endif

/* Norm parameters: eps finite and ≥ 0; a per-channel vector is [C], C the last dimension of x. */
osp_status ops_check_eps(const ops_call *call, float eps);
osp_status ops_check_channel_vector(ops_call *call, const char *name, const osp_tensor *t,
                                    const osp_tensor *x);

/* RoPE's x (named x_name) [B, N, heads, D] (D even) and its tables cos, sin [N, D/2] (shared) or [Bt, N, D/2]
 * with Bt 1 or B, apart from x; table_batch_stride gets 0 for a shared table, N·D/2 otherwise. */
osp_status ops_check_rope_operands(ops_call *call, const char *x_name, const osp_tensor *x,
                                   const osp_tensor *cos, const osp_tensor *sin,
                                   int64_t *table_batch_stride);

/* A row gather's index (i32 [Rd]) and dst (Rd rows as wide as src's, of dst_dtype: src's, or f32
 * from a bf16 table on the CPU; apart from src and index); src itself is checked by the caller.
 * The index values (below src_rows; negative asks for zeros) are read separately, after
 * ops_check_backend (on CUDA, from a host copy). */
osp_status ops_check_gather_operands(ops_call *call, const osp_tensor *src,
                                     const osp_tensor *index, osp_dtype dst_dtype,
                                     const osp_tensor *dst);
osp_status ops_check_gather_index_values(const ops_call *call, const osp_tensor *index,
                                         int64_t src_rows);

/* ---- Videos and their patch tokens (patchify, unpatchify and their backwards) --------------- */

/* A video operand [B, C, F, H, W] whose F, H, W are multiples of a positive patch. */
osp_status ops_check_video(ops_call *call, const char *name, const osp_tensor *video,
                           const int patch[3]);
/* A checked video as the CPU kernels take it, and as the CUDA kernels do. */
osp_cpu_video ops_cpu_video(const osp_tensor *video, const int patch[3]);
#ifdef OSP_HAVE_CUDA
osp_cuda_video ops_cuda_video(const osp_tensor *video, const int patch[3]);
#endif
/* The patch tokens of a video: [B, N, C·pt·ph·pw]. */
osp_status ops_check_patch_tokens(ops_call *call, const char *name, const osp_tensor *tokens,
                                  const osp_cpu_video *video);

/* ---- Gradients (the backward ops of grad.h) -------------------------------------------------- */

/* A tensor's data, or NULL for an absent tensor (a gradient not wanted). */
void *ops_data_or_null(const osp_tensor *t);

/* A gradient output: NULL (not wanted), or a float tensor of `shape` with the layout. */
osp_status ops_check_gradient(ops_call *call, const char *name, const osp_tensor *grad, int ndim,
                              const int64_t *shape, ops_layout layout);

/* The gradient of a parameter or of a table row: as ops_check_gradient, and f32 on every device
 * (on CUDA, where activations and their gradients may be bf16, these accumulate in f32). */
osp_status ops_check_param_gradient(ops_call *call, const char *name, const osp_tensor *grad,
                                    int ndim, const int64_t *shape, ops_layout layout);

/* The operand is NULL, as it must be `because` ("no gate", ...). */
osp_status ops_check_absent(const ops_call *call, const char *name, const osp_tensor *t,
                            const char *because);

/* One operand of a call by name; t NULL where it is absent. */
typedef struct {
  const char *name;
  const osp_tensor *t;
} ops_operand;

#define OPS_COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* The present operands share the first present one's dtype: a backward's activations and their
 * gradients (f32 everywhere on the CPU; bf16 or f32, one of them per call, on CUDA). */
osp_status ops_check_same_dtype(const ops_call *call, const ops_operand *operands, int count);

/* Every present gradient shares no memory with a present input or with another gradient. Two row
 * views [R, C] (rows of one gradient table, say) are compared row by row, so the rows of one table
 * may interleave; any other pair by the span of its bytes, as ops_check_disjoint does. */
osp_status ops_check_gradients_apart(const ops_call *call, const ops_operand *grads,
                                     int grad_count, const ops_operand *inputs, int input_count);

/* t holds one row per entry of index (i32 [Rd]), each as wide as like's rows. */
osp_status ops_check_row_per_index(const ops_call *call, const char *name, const osp_tensor *t,
                                   const osp_tensor *index, const char *like_name,
                                   const osp_tensor *like);

/* Two optional operands that come together (weight and bias, shift and scale). */
osp_status ops_check_both_or_neither(const ops_call *call, const char *a_name, const osp_tensor *a,
                                     const char *b_name, const osp_tensor *b);

#endif
