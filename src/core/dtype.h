/* Element types of compute tensors and their conversions to and from float32. */
#ifndef OSP_CORE_DTYPE_H
#define OSP_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* Floating types hold values; U8 holds masks (1 = keep) and I32 index tables. */
typedef enum { OSP_F32, OSP_BF16, OSP_F16, OSP_F8E4M3, OSP_F8E5M2, OSP_U8, OSP_I32 } osp_dtype;

size_t osp_dtype_size(osp_dtype dtype);
const char *osp_dtype_name(osp_dtype dtype);

/* Scalar conversions. Narrowing rounds to nearest, ties to even; NaN stays NaN.
 * f8e4m3 is OCP "E4M3FN" (no infinities, max 448): as in OCP's non-saturating conversion and
 * older PyTorch, a value that rounds past 448 (|x| > 464) and ±inf become NaN (torch 2.15
 * saturates them to ±448 instead). f8e5m2 keeps IEEE semantics (overflow rounds to ±inf). */
float osp_bf16_to_f32(uint16_t h);
uint16_t osp_f32_to_bf16(float f);
float osp_f16_to_f32(uint16_t h);
uint16_t osp_f32_to_f16(float f);
float osp_f8e4m3_to_f32(uint8_t b);
uint8_t osp_f32_to_f8e4m3(float f);
float osp_f8e5m2_to_f32(uint8_t b);
uint8_t osp_f32_to_f8e5m2(float f);

/* Converts n elements of `src` (a floating `dtype`) to float32 / from float32. */
void osp_convert_to_f32(osp_dtype dtype, const void *src, float *dst, size_t n);
void osp_convert_from_f32(osp_dtype dtype, const float *src, void *dst, size_t n);

#endif
