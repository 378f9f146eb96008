/* libFuzzer target: any byte string is either refused by osp_torch_checkpoint_parse with a
 * message, or read into tensors whose bytes all lie inside the input (or in copies it owns). */
#include <stddef.h>
#include <stdint.h>

#include "core/torch_checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  osp_torch_checkpoint c;
  if (osp_torch_checkpoint_parse("fuzz.pth", data, size, &c) != OSP_OK) return 0;
  volatile unsigned char sink = 0;
  for (int i = 0; i < c.count; i++) {
    const osp_torch_tensor *t = &c.tensors[i];
    size_t bytes = osp_st_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) bytes *= (size_t)t->shape[d];
    if (!t->owned && bytes && (t->data < data || t->data + bytes > data + size)) __builtin_trap();
    for (size_t b = 0; b < bytes; b += 64) sink ^= t->data[b]; /* every byte readable (ASan checks it) */
  }
  (void)sink;
  osp_torch_checkpoint_close(&c);
  return 0;
}
