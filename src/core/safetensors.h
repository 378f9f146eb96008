/* safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
 * dtype, shape and [begin, end) byte range in the data section, then the data section.
 * The reader maps the file and validates the whole header before anything is used: JSON
 * well-formed, keys unique, dtypes known, shape x dtype size == byte range, ranges inside the
 * data section and not overlapping, and no bytes in the data section that no tensor covers.
 * The writer writes to "<path>.tmp.<pid>" and renames, so a crash never leaves a torn file.
 *
 * Large models come in shards: an index JSON ("<stem>.safetensors.index.json", as diffusers and
 * transformers write it: {"weight_map": {"tensor name": "shard file", ...}}) names the shard
 * files beside it. Opening the index opens every shard and gives one file whose entries are all
 * of theirs, so code that reads tensors never knows whether a model was sharded. */
#ifndef OSP_CORE_SAFETENSORS_H
#define OSP_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"

/* Every dtype of the safetensors format. */
typedef enum {
  OSP_ST_BOOL, OSP_ST_U8, OSP_ST_I8, OSP_ST_I16, OSP_ST_U16, OSP_ST_F16, OSP_ST_BF16,
  OSP_ST_I32, OSP_ST_U32, OSP_ST_F32, OSP_ST_F64, OSP_ST_I64, OSP_ST_U64,
  OSP_ST_F8_E4M3, OSP_ST_F8_E5M2
} osp_st_dtype;

size_t osp_st_dtype_size(osp_st_dtype dtype);
const char *osp_st_dtype_name(osp_st_dtype dtype); /* as in the header: "F32", "BF16", ... */

typedef struct {
  char *name;
  osp_st_dtype dtype;
  int ndim;
  int64_t shape[OSP_MAX_DIMS];
  uint64_t begin, end; /* byte range relative to the data section */
  const unsigned char *data;
  const char *file; /* the path of the file holding it (a shard's, for a sharded model) */
} osp_st_entry;

typedef struct osp_st_file {
  char *path; /* for messages */
  unsigned char *map;
  size_t map_size;
  int mapped; /* 1: map came from mmap and is unmapped on close */
  int count;
  osp_st_entry *entries; /* in the order of their byte ranges (shard by shard for an index) */
  int shard_count;            /* opened from an index: the shards, which own the entries' names */
  struct osp_st_file *shards;
  int metadata_count;         /* the header's "__metadata__" strings: key i is metadata[2i], */
  char **metadata;            /* its value metadata[2i + 1] (none for an index) */
} osp_st_file;

/* Maps and validates a file, or, for a path ending in ".json", an index and all its shards (every
 * shard it names must exist and hold the tensors it lists there; a name in two shards is an
 * error). On failure nothing needs closing. */
osp_status osp_st_open(const char *path, osp_st_file *file);

/* The weights file of a model folder: the first of "<stem>.safetensors.index.json" and
 * "<stem>.safetensors" that exists, for each stem in turn (NULL-terminated), written to `path`.
 * The message lists the names looked for. */
osp_status osp_st_locate(const char *folder, const char *const *stems, char *path, size_t size);
/* Validates an in-memory image (the fuzzer's entry point); `label` names it in messages. The bytes
 * must outlive the file. */
osp_status osp_st_parse(const char *label, const unsigned char *bytes, size_t size, osp_st_file *file);
void osp_st_close(osp_st_file *file);

const osp_st_entry *osp_st_find(const osp_st_file *file, const char *name);
/* The "__metadata__" value of `key`, or NULL. */
const char *osp_st_metadata(const osp_st_file *file, const char *key);
int64_t osp_st_numel(const osp_st_entry *entry);

/* Converts an entry of any numeric dtype to float32 (bf16, f16, f8, f64, integers, bool). */
void osp_st_to_f32(const osp_st_entry *entry, float *dst);

/* The index of the first entry at or after `start` that is none of found[0 .. count), or −1: the
 * loaders refuse a file with tensors their model has no place for (another model or config). */
int osp_st_next_unused(const osp_st_file *file, const osp_st_entry *const *found, int count, int start);

/* A float32 view of an entry in `shape` (of the entry's element count): the mapped bytes themselves
 * where they are float32 and aligned for float loads, else a converted copy from `arena`, which
 * must have room for osp_st_f32_copy_bytes(entry). */
size_t osp_st_f32_copy_bytes(const osp_st_entry *entry);
osp_status osp_st_view_f32(const osp_st_entry *entry, osp_arena *arena, int ndim, const int64_t *shape,
                           osp_tensor *out);

/* Finds `name` and checks its shape (a -1 in `shape` matches any size): the message names the
 * file, the tensor, what was expected and what was found. */
osp_status osp_st_expect(const osp_st_file *file, const char *name, int ndim, const int64_t *shape,
                         const osp_st_entry **out);

typedef struct {
  const char *name;
  osp_st_dtype dtype;
  int ndim;
  const int64_t *shape;
  const void *data; /* numel x dtype size bytes, little-endian */
} osp_st_write_entry;

/* Writes entries (in the given order) to path via a temporary file and rename. */
osp_status osp_st_write(const char *path, const osp_st_write_entry *entries, int count);

#endif
