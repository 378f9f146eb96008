/* Sharded safetensors (safetensors.h): an index JSON and the shard files it names, opened as one
 * file. Internal to src/core: callers use osp_st_open and osp_st_close. */
#ifndef OSP_CORE_SAFETENSORS_SHARDS_H
#define OSP_CORE_SAFETENSORS_SHARDS_H

#include <stdbool.h>

#include "core/safetensors.h"

/* True for a path that names an index ("....json"). */
bool osp_st_is_index_path(const char *path);

/* Opens the index at `path` and every shard it names (file zeroed on entry and on failure). */
osp_status osp_st_open_index(const char *path, osp_st_file *file);

/* Closes the shards of a file that osp_st_open_index opened, and the file. */
void osp_st_close_shards(osp_st_file *file);

#endif
