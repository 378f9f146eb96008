/* Sharded safetensors: the index JSON diffusers and transformers write beside their shards,
 *   {"metadata": {"total_size": ...}, "weight_map": {"tensor name": "shard file name", ...}},
 * opened as one osp_st_file whose entries are every shard's (safetensors.h). The shard names are
 * file names in the index's folder. Checked before use: every shard named exists and is a valid
 * safetensors file, every tensor the map lists is in the shard it names, and no tensor name is in
 * two shards. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors_shards.h"
#include "core/status.h"

enum { PATH_BYTES = 4096 };

bool osp_st_is_index_path(const char *path) {
  size_t n = strlen(path);
  return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

/* "<folder of index>/<name>"; a name that leaves the folder ('/' in it) is refused. */
static osp_status shard_path(const char *index, const char *name, char *path, size_t size) {
  if (!name[0] || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
    return osp_fail(OSP_ERR_FORMAT, "%s: shard name '%s' is not a file name in the index's folder",
                    index, name);
  const char *slash = strrchr(index, '/');
  int folder = slash ? (int)(slash - index + 1) : 0;
  if (snprintf(path, size, "%.*s%s", folder, index, name) >= (int)size)
    return osp_fail(OSP_ERR_IO, "%s: shard path too long", index);
  return OSP_OK;
}

/* The weight map: an object of strings. */
static osp_status read_weight_map(const char *path, json_t **root, json_t **map) {
  json_error_t error;
  *root = json_load_file(path, 0, &error);
  if (!*root)
    return osp_fail(OSP_ERR_FORMAT, "%s: not a safetensors index: %s (line %d)", path, error.text,
                    error.line);
  *map = json_object_get(*root, "weight_map");
  if (!json_is_object(*map))
    return osp_fail(OSP_ERR_FORMAT, "%s: no \"weight_map\" object (expected a sharded safetensors "
                    "index, as diffusers and transformers write it)", path);
  const char *name;
  json_t *value;
  json_object_foreach(*map, name, value) {
    if (!json_is_string(value))
      return osp_fail(OSP_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name", path, name);
  }
  if (json_object_size(*map) == 0) return osp_fail(OSP_ERR_FORMAT, "%s: weight_map is empty", path);
  return OSP_OK;
}

/* The distinct shard names of the map, in first-seen order (borrowed from the JSON). */
static osp_status list_shards(const char *path, json_t *map, const char ***names, int *count) {
  *names = calloc(json_object_size(map), sizeof **names);
  if (!*names) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  *count = 0;
  const char *tensor;
  json_t *value;
  json_object_foreach(map, tensor, value) {
    const char *shard = json_string_value(value);
    int known = 0;
    for (int i = 0; i < *count && !known; i++) known = !strcmp((*names)[i], shard);
    if (!known) (*names)[(*count)++] = shard;
  }
  return OSP_OK;
}

static osp_status open_shards(const char *path, const char **names, osp_st_file *file) {
  char shard[PATH_BYTES];
  for (int i = 0; i < file->shard_count; i++) {
    OSP_TRY(shard_path(path, names[i], shard, sizeof shard));
    struct stat info;
    if (stat(shard, &info) != 0)
      return osp_fail(OSP_ERR_MISSING, "%s: shard '%s' is listed in the index but %s does not exist",
                      path, names[i], shard);
    OSP_TRY(osp_st_open(shard, &file->shards[i]));
  }
  return OSP_OK;
}

/* Every tensor the map lists is in the shard it names. */
static osp_status check_map(const char *path, json_t *map, const char **names, const osp_st_file *file) {
  const char *tensor;
  json_t *value;
  json_object_foreach(map, tensor, value) {
    const char *shard = json_string_value(value);
    for (int i = 0; i < file->shard_count; i++)
      if (!strcmp(names[i], shard) && !osp_st_find(&file->shards[i], tensor))
        return osp_fail(OSP_ERR_MISSING, "%s: tensor '%s' is listed in shard '%s', which does not hold it",
                        path, tensor, shard);
  }
  return OSP_OK;
}

/* One entry table over all shards; the names stay the shards'. */
static osp_status merge_entries(const char *path, osp_st_file *file) {
  int total = 0;
  for (int i = 0; i < file->shard_count; i++) total += file->shards[i].count;
  file->entries = calloc((size_t)total + 1, sizeof *file->entries);
  if (!file->entries) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory for %d tensors", path, total);
  for (int i = 0; i < file->shard_count; i++)
    for (int j = 0; j < file->shards[i].count; j++) {
      const osp_st_entry *e = &file->shards[i].entries[j];
      const osp_st_entry *before = osp_st_find(file, e->name);
      if (before)
        return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' is in two shards (%s and %s)", path, e->name,
                        before->file, e->file);
      file->entries[file->count++] = *e;
    }
  return OSP_OK;
}

osp_status osp_st_open_index(const char *path, osp_st_file *file) {
  memset(file, 0, sizeof *file);
  json_t *root = NULL, *map = NULL;
  const char **names = NULL;
  osp_status status = read_weight_map(path, &root, &map);
  if (status == OSP_OK) status = list_shards(path, map, &names, &file->shard_count);
  if (status == OSP_OK) {
    file->path = strdup(path);
    file->shards = calloc((size_t)file->shard_count, sizeof *file->shards);
    if (!file->path || !file->shards) status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  }
  if (status == OSP_OK) status = open_shards(path, names, file);
  if (status == OSP_OK) status = check_map(path, map, names, file);
  if (status == OSP_OK) status = merge_entries(path, file);
  free(names);
  json_decref(root);
  if (status != OSP_OK) osp_st_close_shards(file);
  return status;
}

void osp_st_close_shards(osp_st_file *file) {
  for (int i = 0; i < file->shard_count; i++) osp_st_close(&file->shards[i]);
  free(file->shards);
  free(file->entries);
  free(file->path);
  memset(file, 0, sizeof *file);
}

osp_status osp_st_locate(const char *folder, const char *const *stems, char *path, size_t size) {
  static const char *const suffixes[] = {".safetensors.index.json", ".safetensors"};
  char tried[1024] = "";
  size_t used = 0;
  for (int i = 0; stems[i]; i++)
    for (int j = 0; j < 2; j++) {
      if (snprintf(path, size, "%s/%s%s", folder, stems[i], suffixes[j]) >= (int)size)
        return osp_fail(OSP_ERR_IO, "%s: path too long", folder);
      struct stat info;
      if (stat(path, &info) == 0 && S_ISREG(info.st_mode)) return OSP_OK;
      if (used < sizeof tried)
        used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s%s", used ? ", " : "", stems[i],
                                 suffixes[j]);
    }
  return osp_fail(OSP_ERR_MISSING, "%s: no weights file (looked for %s)", folder, tried);
}
