/* PyTorch checkpoints (torch.save's zip format, torch ≥ 1.6): the state dict of a .pth file, read
 * without Python. The pickle inside is run by a small machine that knows only what a state dict
 * needs (dicts, OrderedDicts, tuples, lists, strings, numbers, and tensors rebuilt by
 * torch._utils._rebuild_tensor_v2 over the archive's storages); any other global, such as a
 * function a crafted file names, is refused, never called. */
#ifndef OSP_CORE_TORCH_CHECKPOINT_H
#define OSP_CORE_TORCH_CHECKPOINT_H

#include "core/safetensors.h"
#include "core/zip.h"

typedef struct {
  char *name;            /* nested dicts flattened with '.' */
  osp_st_dtype dtype;
  int ndim;
  int64_t shape[OSP_MAX_DIMS];
  const unsigned char *data; /* contiguous: into the archive where the tensor is, else `owned` */
  unsigned char *owned;
} osp_torch_tensor;

typedef struct {
  osp_zip zip;
  int count;
  osp_torch_tensor *tensors; /* in the pickle's order */
  char unwrapped[32];        /* "state_dict" or "model" where the tensors sat under that key, else "" */
} osp_torch_checkpoint;

/* Opens a checkpoint and rebuilds its tensors (views into the archive where they are contiguous;
 * strided views copied). Errors name the file and what was wrong. */
osp_status osp_torch_checkpoint_open(const char *path, osp_torch_checkpoint *checkpoint);
/* The same over bytes in memory (the fuzzer's entry point); they must outlive the checkpoint. */
osp_status osp_torch_checkpoint_parse(const char *label, const unsigned char *bytes, size_t size,
                                      osp_torch_checkpoint *checkpoint);
void osp_torch_checkpoint_close(osp_torch_checkpoint *checkpoint);

#endif
