/* osp bench --umt5: the umT5-XXL text encoder on a device, random weights. */
#ifndef OSP_TOOLS_BENCH_UMT5_H
#define OSP_TOOLS_BENCH_UMT5_H

#include <jansson.h>
#include <stdint.h>

#include "core/tensor.h"

/* Encodes `tokens` random token ids with a random umT5-XXL on `device`: one warm-up encode, then
 * one timed. Prints milliseconds and TFLOP/s (the matmuls and attention: 2·L·(4·d·inner +
 * 3·d·d_ff) + 4·L²·inner per layer); appends them to `results`. */
osp_status bench_umt5(osp_device device, int64_t tokens, json_t *results);

#endif
