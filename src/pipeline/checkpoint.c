/* Writing and reading training checkpoints (checkpoint.h): safetensors for the tensors, a small
 * JSON for the step and the data position, a folder renamed into place when complete. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "pipeline/checkpoint.h"

static const char *const moment_prefix[2] = {"m.", "v."};

enum { PATH_BYTES = 4352 };

/* out = "<folder>/<name>", or an error where it would not fit. */
static osp_status join(char *out, const char *folder, const char *name) {
  if (snprintf(out, PATH_BYTES, "%s/%s", folder, name) >= PATH_BYTES)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", folder);
  return OSP_OK;
}

/* Every parameter of the DiTs (weights, m, v and, where kept, the EMA), listed once each (freed
 * by free_lists). */
typedef struct {
  osp_dit_parameter *list[4]; /* weights, m, v, ema (NULL: none) */
  int count;
} parameter_lists;

static void free_lists(parameter_lists *p) {
  for (int i = 0; i < 4; i++) free(p->list[i]);
}

static osp_status list_all(const osp_train_tensors *t, parameter_lists *p) {
  *p = (parameter_lists){0};
  osp_dit *dits[4] = {t->weights, t->m, t->v, t->ema};
  for (int i = 0; i < 4; i++) {
    int count;
    osp_status status = dits[i] ? osp_dit_parameters(dits[i], &p->list[i], &count) : OSP_OK;
    if (status != OSP_OK) {
      free_lists(p);
      return status;
    }
    if (dits[i]) p->count = count;
  }
  return OSP_OK;
}

/* One DiT's tensors under their own names. */
static osp_status write_weights(const char *path, const osp_dit_parameter *list, int count) {
  osp_st_write_entry *entries = calloc((size_t)count, sizeof *entries);
  if (!entries) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  for (int i = 0; i < count; i++) {
    const osp_tensor *t = &list[i].tensor;
    entries[i] = (osp_st_write_entry){list[i].name, OSP_ST_F32, t->ndim, t->shape, t->data};
  }
  osp_status status = osp_st_write(path, entries, count);
  free(entries);
  return status;
}

static osp_status write_moments(const char *path, const parameter_lists *p) {
  osp_st_write_entry *entries = calloc(2 * (size_t)p->count, sizeof *entries);
  char (*names)[sizeof p->list[0][0].name + 2] = calloc(2 * (size_t)p->count, sizeof *names);
  osp_status status = entries && names ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  for (int k = 0; status == OSP_OK && k < 2; k++)
    for (int i = 0; i < p->count; i++) {
      const osp_tensor *t = &p->list[1 + k][i].tensor;
      snprintf(names[k * p->count + i], sizeof names[0], "%s%s", moment_prefix[k], p->list[1 + k][i].name);
      entries[k * p->count + i] = (osp_st_write_entry){names[k * p->count + i], OSP_ST_F32, t->ndim, t->shape, t->data};
    }
  if (status == OSP_OK) status = osp_st_write(path, entries, 2 * p->count);
  free(names);
  free(entries);
  return status;
}

static osp_status write_state(const char *path, const osp_train_state *state) {
  json_t *root = json_pack("{s:I, s:I, s:I, s:f}", "step", (json_int_t)state->step, "epoch",
                           (json_int_t)state->position.epoch, "index", (json_int_t)state->position.index,
                           "loss", state->loss);
  if (!root) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  int rc = json_dump_file(root, path, JSON_INDENT(1));
  json_decref(root);
  return rc == 0 ? OSP_OK : osp_fail(OSP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
}

static osp_status make_folder(const char *path) {
  if (mkdir(path, 0777) == 0 || errno == EEXIST) return OSP_OK;
  return osp_fail(OSP_ERR_IO, "%s: cannot create the folder: %s", path, strerror(errno));
}


static osp_status write_folder(const char *partial, const parameter_lists *p, const osp_train_state *state) {
  char file[PATH_BYTES];
  OSP_TRY(make_folder(partial));
  OSP_TRY(join(file, partial, "weights.safetensors"));
  OSP_TRY(write_weights(file, p->list[0], p->count));
  if (p->list[3]) {
    OSP_TRY(join(file, partial, "ema.safetensors"));
    OSP_TRY(write_weights(file, p->list[3], p->count));
  }
  OSP_TRY(join(file, partial, "optimizer.safetensors"));
  OSP_TRY(write_moments(file, p));
  OSP_TRY(join(file, partial, "state.json"));
  return write_state(file, state);
}

osp_status osp_checkpoint_save(const char *output, const osp_train_tensors *tensors, const osp_train_state *state,
                               char *path, size_t path_size) {
  char partial[PATH_BYTES], name[64];
  OSP_TRY(make_folder(output));
  snprintf(name, sizeof name, ".step-%lld.partial", (long long)state->step);
  OSP_TRY(join(partial, output, name));
  if (snprintf(path, path_size, "%s/step-%lld", output, (long long)state->step) >= (int)path_size)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: path too long", output);
  osp_remove_folder(partial);
  parameter_lists p;
  OSP_TRY(list_all(tensors, &p));
  osp_status status = write_folder(partial, &p, state);
  free_lists(&p);
  if (status == OSP_OK) osp_remove_folder(path); /* a checkpoint of this step from an earlier run */
  if (status == OSP_OK && rename(partial, path) != 0)
    status = osp_fail(OSP_ERR_IO, "%s: cannot rename %s to it: %s", path, partial, strerror(errno));
  if (status != OSP_OK) osp_remove_folder(partial);
  return status;
}

/* Copies every tensor named `prefix` + the parameter's name into the parameter. */
static osp_status read_tensors(const char *path, const char *prefix, osp_dit_parameter *list, int count) {
  osp_st_file file;
  OSP_TRY(osp_st_open(path, &file));
  osp_status status = OSP_OK;
  char name[sizeof list[0].name + 8];
  for (int i = 0; status == OSP_OK && i < count; i++) {
    const osp_st_entry *e;
    snprintf(name, sizeof name, "%s%s", prefix, list[i].name);
    status = osp_st_expect(&file, name, list[i].tensor.ndim, list[i].tensor.shape, &e);
    if (status == OSP_OK) osp_st_to_f32(e, list[i].tensor.data);
  }
  osp_st_close(&file);
  return status;
}

static osp_status read_state(const char *path, osp_train_state *state) {
  json_error_t error;
  json_t *root = json_load_file(path, 0, &error);
  if (!root) return osp_fail(OSP_ERR_FORMAT, "%s: line %d: %s", path, error.line, error.text);
  json_int_t step, epoch, index;
  double loss;
  int rc = json_unpack(root, "{s:I, s:I, s:I, s:F}", "step", &step, "epoch", &epoch, "index", &index, "loss", &loss);
  json_decref(root);
  if (rc != 0 || step < 0 || epoch < 0 || index < 0)
    return osp_fail(OSP_ERR_FORMAT, "%s: expected {\"step\", \"epoch\", \"index\": integers >= 0, \"loss\": a number}", path);
  *state = (osp_train_state){.step = step, .position = {.epoch = epoch, .index = index}, .loss = loss};
  return OSP_OK;
}

osp_status osp_checkpoint_load(const char *path, osp_train_tensors *tensors, osp_train_state *state) {
  parameter_lists p;
  char file[PATH_BYTES];
  OSP_TRY(list_all(tensors, &p));
  osp_status status = join(file, path, "weights.safetensors");
  if (status == OSP_OK) status = read_tensors(file, "", p.list[0], p.count);
  if (status == OSP_OK) status = join(file, path, "optimizer.safetensors");
  for (int k = 0; status == OSP_OK && k < 2; k++) status = read_tensors(file, moment_prefix[k], p.list[1 + k], p.count);
  if (status == OSP_OK && p.list[3]) status = join(file, path, "ema.safetensors");
  if (status == OSP_OK && p.list[3]) status = read_tensors(file, "", p.list[3], p.count);
  free_lists(&p);
  if (status == OSP_OK) status = join(file, path, "state.json");
  return status == OSP_OK ? read_state(file, state) : status;
}

osp_status osp_checkpoint_latest(const char *output, char *path, size_t path_size) {
  path[0] = '\0';
  DIR *dir = opendir(output);
  if (!dir) return errno == ENOENT ? OSP_OK : osp_fail(OSP_ERR_IO, "%s: cannot read: %s", output, strerror(errno));
  long long best = -1;
  for (struct dirent *e; (e = readdir(dir));) {
    long long step;
    char end;
    if (sscanf(e->d_name, "step-%lld%c", &step, &end) == 1 && step > best) best = step;
  }
  closedir(dir);
  if (best >= 0) snprintf(path, path_size, "%s/step-%lld", output, best);
  return OSP_OK;
}
