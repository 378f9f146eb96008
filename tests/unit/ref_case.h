/* The runner of the reference-case tests (test_ops_ref, test_grads_ref, ...): each reads a
 * directory of case files that a script in tests/ref/ writes with PyTorch, runs the op the file
 * name names, and compares its outputs with the file's references.
 *
 * A case file <op>.<case>.safetensors holds the op's inputs and its expected outputs (ref*). The
 * error of a case is the worst, over its outputs, of max|osp − ref| / max|ref|; it passes when that
 * is within its op's tolerance. A missing or empty case directory, an unknown op, or an op with no
 * case is a failure. Header-only, like harness.h: each test program includes it once. */
#ifndef OSP_TEST_REF_CASE_H
#define OSP_TEST_REF_CASE_H

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "harness.h"

enum { MAX_BUFFERS = 32 };

/* One open case file, the buffers its tensors live in, and its worst error so far. */
typedef struct {
  osp_st_file file;
  void *buffers[MAX_BUFFERS];
  int buffer_count;
  double error;
  const char *worst_output;
} test_case;

static inline osp_status case_alloc(test_case *c, size_t bytes, void **out) {
  if (c->buffer_count == MAX_BUFFERS)
    return osp_fail(OSP_ERR_MEMORY, "%s: more than %d tensors", c->file.path, MAX_BUFFERS);
  *out = malloc(bytes ? bytes : 1);
  if (!*out) return osp_fail(OSP_ERR_MEMORY, "%s: cannot allocate %zu bytes", c->file.path, bytes);
  c->buffers[c->buffer_count++] = *out;
  return OSP_OK;
}

static inline void case_close(test_case *c) {
  for (int i = 0; i < c->buffer_count; i++) free(c->buffers[i]);
  osp_st_close(&c->file);
}

static inline bool has_tensor(const test_case *c, const char *name) {
  return osp_st_find(&c->file, name) != NULL;
}

static inline osp_status find_tensor(const test_case *c, const char *name, const osp_st_entry **entry) {
  *entry = osp_st_find(&c->file, name);
  if (!*entry) return osp_fail(OSP_ERR_MISSING, "%s: no tensor '%s'", c->file.path, name);
  return OSP_OK;
}

/* A float64 scalar of the case: exactly the Python float the reference was given. */
static inline osp_status load_f64(test_case *c, const char *name, double *value) {
  const osp_st_entry *entry;
  OSP_TRY(find_tensor(c, name, &entry));
  if (entry->dtype != OSP_ST_F64 || osp_st_numel(entry) != 1)
    return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' is not a single F64 value", c->file.path,
                    name);
  memcpy(value, entry->data, sizeof *value);
  return OSP_OK;
}

/* Tensor `name` of the case as a contiguous float32 CPU tensor (any stored dtype converted). */
static inline osp_status load_f32(test_case *c, const char *name, osp_tensor *out) {
  const osp_st_entry *entry;
  OSP_TRY(find_tensor(c, name, &entry));
  void *data;
  OSP_TRY(case_alloc(c, (size_t)osp_st_numel(entry) * sizeof(float), &data));
  osp_st_to_f32(entry, data);
  *out = osp_tensor_make(data, OSP_F32, OSP_CPU, entry->ndim, entry->shape);
  return OSP_OK;
}

/* Tensor `name` of the case copied as it is stored, which must be `stored` (a mask, an index
 * table), as a contiguous CPU tensor of `dtype`. */
static inline osp_status load_as_stored(test_case *c, const char *name, osp_st_dtype stored,
                                 osp_dtype dtype, osp_tensor *out) {
  const osp_st_entry *entry;
  OSP_TRY(find_tensor(c, name, &entry));
  if (entry->dtype != stored)
    return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' is %s, expected %s", c->file.path, name,
                    osp_st_dtype_name(entry->dtype), osp_st_dtype_name(stored));
  const size_t bytes = (size_t)osp_st_numel(entry) * osp_st_dtype_size(stored);
  void *data;
  OSP_TRY(case_alloc(c, bytes, &data));
  memcpy(data, entry->data, bytes);
  *out = osp_tensor_make(data, dtype, OSP_CPU, entry->ndim, entry->shape);
  return OSP_OK;
}

/* A parameter stored as `count` small integers (grid, patch, table rows). */
static inline osp_status load_ints(test_case *c, const char *name, int count, int *values) {
  osp_tensor t;
  OSP_TRY(load_f32(c, name, &t));
  if (osp_tensor_numel(&t) != count)
    return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' has %lld values, expected %d", c->file.path,
                    name, (long long)osp_tensor_numel(&t), count);
  for (int i = 0; i < count; i++) values[i] = (int)((const float *)t.data)[i];
  return OSP_OK;
}

static inline osp_status load_scalar(test_case *c, const char *name, float *value) {
  osp_tensor t;
  OSP_TRY(load_f32(c, name, &t));
  if (osp_tensor_numel(&t) != 1)
    return osp_fail(OSP_ERR_FORMAT, "%s: tensor '%s' is not a single value", c->file.path, name);
  *value = *(const float *)t.data;
  return OSP_OK;
}

/* An output tensor of the given shape, filled with NaN so that an element the op leaves unwritten
 * fails the comparison. */
static inline osp_status new_output(test_case *c, int ndim, const int64_t *shape, osp_tensor *out) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  void *data;
  OSP_TRY(case_alloc(c, (size_t)n * sizeof(float), &data));
  for (int64_t i = 0; i < n; i++) ((float *)data)[i] = NAN;
  *out = osp_tensor_make(data, OSP_F32, OSP_CPU, ndim, shape);
  return OSP_OK;
}

/* max|got − ref| / max|ref| (max|ref| = 0 compares absolutely); NaN anywhere gives NaN. */
static inline double relative_error(const float *got, const float *ref, int64_t n) {
  double worst = 0.0, scale = 0.0;
  for (int64_t i = 0; i < n; i++) {
    const double diff = fabs((double)got[i] - (double)ref[i]);
    if (isnan(diff)) return NAN;
    worst = fmax(worst, diff);
    scale = fmax(scale, fabs((double)ref[i]));
  }
  return scale > 0.0 ? worst / scale : worst;
}

/* Compares `got` with the case's reference `ref_name` and keeps the worst error of the case. */
static inline osp_status compare(test_case *c, const char *ref_name, const osp_tensor *got) {
  osp_tensor ref;
  OSP_TRY(load_f32(c, ref_name, &ref));
  if (!osp_tensor_same_shape(got, &ref)) {
    char a[160], b[160];
    return osp_fail(OSP_ERR_SHAPE, "%s: '%s' is %s, the op's output %s", c->file.path, ref_name,
                    osp_shape_string(&ref, a, sizeof a), osp_shape_string(got, b, sizeof b));
  }
  const double error = relative_error(got->data, ref.data, osp_tensor_numel(&ref));
  if (isnan(error) || error > c->error) {
    c->error = error;
    c->worst_output = ref_name;
  }
  return OSP_OK;
}

/* Row `row` of a [B, rows, C] table as a strided [B, C] view. */
static inline osp_tensor table_row(const osp_tensor *table, int row) {
  osp_tensor view = *table;
  view.data = (float *)table->data + (int64_t)row * table->shape[2];
  view.ndim = 2;
  view.shape[1] = table->shape[2];
  view.stride[0] = table->stride[0];
  view.stride[1] = 1;
  return view;
}

typedef struct {
  const char *op; /* the file name prefix */
  osp_status (*run)(test_case *c);
  double tolerance; /* of max|osp − ref| / max|ref| */
  int cases_run;
} op_entry;

/* The op whose name is the file name up to its first '.'. */
static inline op_entry *op_of_file(op_entry *ops, int op_count, const char *file_name) {
  const size_t length = strcspn(file_name, ".");
  for (int i = 0; i < op_count; i++)
    if (strlen(ops[i].op) == length && strncmp(ops[i].op, file_name, length) == 0) return &ops[i];
  return NULL;
}

static inline void record(bool passed) {
  if (passed)
    test_checks_passed++;
  else
    test_checks_failed++;
}

/* Runs one case file and prints its line. */
static inline void run_case(op_entry *ops, int op_count, const char *dir, const char *file_name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file_name);
  op_entry *op = op_of_file(ops, op_count, file_name);
  if (!op) {
    printf("%-48s FAILED: no op is named by this file\n", file_name);
    record(false);
    return;
  }
  test_case c = {.error = 0.0, .worst_output = "ref"};
  osp_status status = osp_st_open(path, &c.file);
  if (status == OSP_OK) {
    status = op->run(&c);
    case_close(&c);
  }
  op->cases_run++;
  if (status != OSP_OK) {
    printf("%-48s FAILED: %s\n", file_name, osp_last_error());
    record(false);
    return;
  }
  const bool passed = c.error <= op->tolerance;
  printf("%-48s error %.2e (%s)  tolerance %.0e  %s\n", file_name, c.error, c.worst_output,
         op->tolerance, passed ? "ok" : "FAILED");
  record(passed);
}

static inline int is_case_file(const struct dirent *entry) {
  const char *suffix = ".safetensors";
  const size_t n = strlen(entry->d_name), s = strlen(suffix);
  return n > s && strcmp(entry->d_name + n - s, suffix) == 0;
}

/* An error-path check: the call returned `want` and, when that is an error, exactly the message
 * `want_message`; a mismatch prints both and counts as a failure. */
static inline void expect_status(osp_status got, osp_status want, const char *want_message) {
  const bool passed = got == want && (got == OSP_OK || strcmp(osp_last_error(), want_message) == 0);
  if (!passed)
    fprintf(stderr, "expected %s: %s\n     got %s: %s\n", osp_status_name(want), want_message,
            osp_status_name(got), got == OSP_OK ? "" : osp_last_error());
  record(passed);
}

/* Runs every case file of `dir` with the ops of the table; an op with no case fails. `program`
 * names the test in its summary line, `generator` the script that writes the cases. */
static inline int ref_cases_main(const char *program, const char *generator, const char *dir,
                          op_entry *ops, int op_count) {
  struct dirent **files;
  const int count = scandir(dir, &files, is_case_file, alphasort);
  if (count <= 0) {
    fprintf(stderr, "%s: no case files in '%s': run %s %s\n", program, dir, generator, dir);
    return 1;
  }
  for (int i = 0; i < count; i++) {
    run_case(ops, op_count, dir, files[i]->d_name);
    free(files[i]);
  }
  free(files);
  for (int i = 0; i < op_count; i++) {
    if (ops[i].cases_run) continue;
    printf("%-48s FAILED: no case for this op in %s\n", ops[i].op, dir);
    record(false);
  }
  return test_summary(program);
}

#endif
