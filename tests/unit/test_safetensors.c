/* safetensors: round trips of every dtype, conversion to float32, and every malformed input the
 * reader must refuse, each with the status and a message naming the file and the tensor. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "harness.h"

static char temp_dir[] = "/tmp/osp_test_safetensors_XXXXXX";

static const char *path_in_temp(const char *name, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", temp_dir, name);
  return buf;
}

static int write_file(const char *path, const void *bytes, size_t size) {
  FILE *out = fopen(path, "wb");
  if (!out) return -1;
  size_t written = fwrite(bytes, 1, size, out);
  return (fclose(out) == 0 && written == size) ? 0 : -1;
}

/* Removes the temp dir: it holds files and empty directories only. */
static void remove_temp_dir(void) {
  DIR *dir = opendir(temp_dir);
  if (!dir) return;
  struct dirent *item;
  char path[512];
  while ((item = readdir(dir)) != NULL) {
    if (strcmp(item->d_name, ".") == 0 || strcmp(item->d_name, "..") == 0) continue;
    path_in_temp(item->d_name, path, sizeof path);
    if (unlink(path) != 0) rmdir(path);
  }
  closedir(dir);
  rmdir(temp_dir);
}

static int count_temp_files(void) {
  DIR *dir = opendir(temp_dir);
  int count = 0;
  for (struct dirent *item; dir && (item = readdir(dir)) != NULL;)
    count += strstr(item->d_name, ".tmp.") != NULL;
  if (dir) closedir(dir);
  return count;
}

static int message_mentions(const char *text) {
  return text == NULL || strstr(osp_last_error(), text) != NULL;
}

/* ---- round trips -------------------------------------------------------------------------- */

static const uint8_t bool_data[] = {0, 1, 1, 0};
static const float bool_f32[] = {0, 1, 1, 0};
static const uint8_t u8_data[] = {0, 7, 255};
static const float u8_f32[] = {0, 7, 255};
static const int8_t i8_data[] = {-128, -1, 127};
static const float i8_f32[] = {-128, -1, 127};
static const int16_t i16_data[] = {-32768, 12345, 32767};
static const float i16_f32[] = {-32768, 12345, 32767};
static const uint16_t u16_data[] = {0, 65535};
static const float u16_f32[] = {0, 65535};
static const uint16_t f16_data[] = {0x3C00, 0xC000, 0x0001, 0x7C00};
static const float f16_f32[] = {1, -2, 0x1p-24f, INFINITY};
static const uint16_t bf16_data[] = {0x3F80, 0xC040, 0x7F7F};
static const float bf16_f32[] = {1, -3, 0x1.FEp127f};
static const int32_t i32_data[] = {INT32_MIN, 123456789};
static const float i32_f32[] = {-2147483648.0f, 123456792.0f};
static const uint32_t u32_data[] = {UINT32_MAX};
static const float u32_f32[] = {4294967296.0f};
static const float f32_data[] = {1.5f, -0.25f};
static const double f64_data[] = {0.1, -1e10};
static const float f64_f32[] = {0.1f, -1e10f};
static const int64_t i64_data[] = {-(INT64_C(1) << 40), 3};
static const float i64_f32[] = {-0x1p40f, 3};
static const uint64_t u64_data[] = {UINT64_MAX};
static const float u64_f32[] = {0x1p64f};
static const uint8_t e4m3_data[] = {0x38, 0x7E, 0x01, 0xB8};
static const float e4m3_f32[] = {1, 448, 0x1p-9f, -1};
static const uint8_t e5m2_data[] = {0x3C, 0x7B, 0x7C};
static const float e5m2_f32[] = {1, 57344, INFINITY};
static const float scalar_data[] = {2.5f};

/* Every dtype, a 0-dim and two empty tensors. The odd sizes at the front put most data at
 * unaligned addresses. */
static const struct {
  const char *name;
  osp_st_dtype dtype;
  int ndim;
  int64_t shape[2];
  const void *data;
  const float *f32;
} samples[] = {
    {"mask", OSP_ST_BOOL, 2, {2, 2}, bool_data, bool_f32},
    {"bytes", OSP_ST_U8, 1, {3}, u8_data, u8_f32},
    {"int8", OSP_ST_I8, 1, {3}, i8_data, i8_f32},
    {"int16", OSP_ST_I16, 1, {3}, i16_data, i16_f32},
    {"uint16", OSP_ST_U16, 1, {2}, u16_data, u16_f32},
    {"half", OSP_ST_F16, 2, {1, 4}, f16_data, f16_f32},
    {"brain", OSP_ST_BF16, 1, {3}, bf16_data, bf16_f32},
    {"int32", OSP_ST_I32, 1, {2}, i32_data, i32_f32},
    {"uint32", OSP_ST_U32, 1, {1}, u32_data, u32_f32},
    {"blocks.0.ffn.0.weight", OSP_ST_F32, 2, {2, 1}, f32_data, f32_data},
    {"double", OSP_ST_F64, 1, {2}, f64_data, f64_f32},
    {"int64", OSP_ST_I64, 1, {2}, i64_data, i64_f32},
    {"uint64", OSP_ST_U64, 1, {1}, u64_data, u64_f32},
    {"fp8.e4m3", OSP_ST_F8_E4M3, 1, {4}, e4m3_data, e4m3_f32},
    {"fp8.e5m2", OSP_ST_F8_E5M2, 1, {3}, e5m2_data, e5m2_f32},
    {"scalar", OSP_ST_F32, 0, {0}, scalar_data, scalar_data},
    {"empty", OSP_ST_F32, 2, {2, 0}, NULL, NULL},
    {"nothing", OSP_ST_U8, 1, {0}, NULL, NULL},
};
enum { SAMPLE_COUNT = sizeof samples / sizeof samples[0] };

static int64_t sample_numel(int i) {
  int64_t n = 1;
  for (int d = 0; d < samples[i].ndim; d++) n *= samples[i].shape[d];
  return n;
}

static int same_float(float a, float b) { return a == b || (isnan(a) && isnan(b)); }

static void check_sample(const osp_st_file *file, int i) {
  const osp_st_entry *entry = osp_st_find(file, samples[i].name);
  CHECK(entry != NULL);
  if (!entry) return;
  int64_t numel = sample_numel(i);
  CHECK(entry->dtype == samples[i].dtype);
  CHECK(entry->ndim == samples[i].ndim);
  for (int d = 0; d < entry->ndim; d++) CHECK(entry->shape[d] == samples[i].shape[d]);
  CHECK(osp_st_numel(entry) == numel);
  size_t bytes = (size_t)numel * osp_st_dtype_size(samples[i].dtype);
  CHECK(entry->end - entry->begin == bytes);
  if (numel == 0) return;
  CHECK(memcmp(entry->data, samples[i].data, bytes) == 0);
  float converted[8];
  osp_st_to_f32(entry, converted);
  for (int64_t k = 0; k < numel; k++) CHECK(same_float(converted[k], samples[i].f32[k]));
}

static void test_round_trip_every_dtype(void) {
  osp_st_write_entry entries[SAMPLE_COUNT];
  for (int i = 0; i < SAMPLE_COUNT; i++)
    entries[i] = (osp_st_write_entry){samples[i].name, samples[i].dtype, samples[i].ndim,
                                      samples[i].shape, samples[i].data};
  char path[512];
  path_in_temp("every_dtype.safetensors", path, sizeof path);
  CHECK(osp_st_write(path, entries, SAMPLE_COUNT) == OSP_OK);
  osp_st_file file;
  osp_status opened = osp_st_open(path, &file);
  CHECK(opened == OSP_OK);
  if (opened != OSP_OK) return;
  CHECK(file.count == SAMPLE_COUNT);
  CHECK(strcmp(file.path, path) == 0);
  /* The header is padded to a multiple of 8 and the data section follows it. */
  uint64_t header_bytes = 0;
  for (int b = 7; b >= 0; b--) header_bytes = (header_bytes << 8) | file.map[b];
  CHECK(header_bytes % 8 == 0);
  CHECK(file.entries[0].begin == 0 && file.entries[0].data == file.map + 8 + header_bytes);
  for (int i = 0; i + 1 < file.count; i++)
    CHECK(file.entries[i].begin <= file.entries[i + 1].begin);
  for (int i = 0; i < SAMPLE_COUNT; i++) check_sample(&file, i);
  CHECK(osp_st_find(&file, "absent") == NULL);
  osp_st_close(&file);
  CHECK(count_temp_files() == 0);
}

static void test_dtype_names(void) {
  CHECK(strcmp(osp_st_dtype_name(OSP_ST_BF16), "BF16") == 0);
  CHECK(strcmp(osp_st_dtype_name(OSP_ST_F8_E4M3), "F8_E4M3") == 0);
  CHECK(osp_st_dtype_size(OSP_ST_F64) == 8 && osp_st_dtype_size(OSP_ST_BOOL) == 1);
}

static void test_no_tensors(void) {
  char path[512];
  path_in_temp("none.safetensors", path, sizeof path);
  CHECK(osp_st_write(path, NULL, 0) == OSP_OK);
  osp_st_file file;
  CHECK(osp_st_open(path, &file) == OSP_OK);
  CHECK(file.count == 0);
  osp_st_close(&file);
}

/* Rewriting a file replaces it whole. */
static void test_overwrite(void) {
  char path[512];
  path_in_temp("overwrite.safetensors", path, sizeof path);
  const int64_t two = 2, one = 1;
  osp_st_write_entry first = {"w", OSP_ST_F32, 1, &two, f32_data};
  osp_st_write_entry second = {"v", OSP_ST_F64, 1, &one, f64_data};
  CHECK(osp_st_write(path, &first, 1) == OSP_OK);
  CHECK(osp_st_write(path, &second, 1) == OSP_OK);
  osp_st_file file;
  CHECK(osp_st_open(path, &file) == OSP_OK);
  CHECK(file.count == 1 && osp_st_find(&file, "v") != NULL);
  osp_st_close(&file);
}

/* ---- hand-made images --------------------------------------------------------------------- */

/* The JSON of the cases below is written with ' for " to stay readable. */
static char *double_quoted(const char *text) {
  char *json = strdup(text);
  for (char *c = json; c && *c; c++)
    if (*c == '\'') *c = '"';
  return json;
}

/* length field + header + data_bytes bytes of data; the caller frees the image. */
static unsigned char *make_image(const char *header, size_t data_bytes, size_t *size) {
  char *json = double_quoted(header);
  size_t length = strlen(json);
  *size = 8 + length + data_bytes;
  unsigned char *image = calloc(*size, 1);
  for (int b = 0; b < 8; b++) image[b] = (unsigned char)((uint64_t)length >> (8 * b));
  memcpy(image + 8, json, length);
  for (size_t i = 0; i < data_bytes; i++) image[8 + length + i] = (unsigned char)i;
  free(json);
  return image;
}

/* Metadata is no tensor, and its strings can be read back. */
static void test_metadata_is_kept_apart(void) {
  size_t size;
  unsigned char *image = make_image(
      "{'__metadata__': {'format': 'pt', 'note': ''}, 'w': {'dtype': 'U8', 'shape': [3], "
      "'data_offsets': [0, 3]}}",
      3, &size);
  osp_st_file file;
  CHECK(osp_st_parse("meta.safetensors", image, size, &file) == OSP_OK);
  CHECK(file.count == 1 && osp_st_find(&file, "w") != NULL &&
        osp_st_find(&file, "__metadata__") == NULL);
  CHECK(file.metadata_count == 2 && !strcmp(osp_st_metadata(&file, "format"), "pt") &&
        !strcmp(osp_st_metadata(&file, "note"), "") && osp_st_metadata(&file, "w") == NULL);
  osp_st_close(&file);
  free(image);
}

/* An image the reader must refuse: the status and what the message must mention besides the file.
 */
typedef struct {
  const char *file;
  const char *header; /* NULL: the image is `raw` */
  size_t data_bytes;
  const char *raw;
  size_t raw_size;
  osp_status status;
  const char *mention[2];
} bad_image;

static const bad_image bad_images[] = {
    {"empty.safetensors", NULL, 0, "", 0, OSP_ERR_FORMAT, {"0 bytes"}},
    {"truncated.safetensors", NULL, 0, "\x10\x00\x00", 3, OSP_ERR_FORMAT, {"3 bytes", "8-byte"}},
    {"length_past_eof.safetensors",
     NULL,
     0,
     "\x00\x10\x00\x00\x00\x00\x00\x00{}",
     10,
     OSP_ERR_FORMAT,
     {"header length 4096", "2 bytes follow"}},
    {"length_huge.safetensors",
     NULL,
     0,
     "\xff\xff\xff\xff\xff\xff\xff\x7f{}",
     10,
     OSP_ERR_FORMAT,
     {"limit"}},
    {"not_json.safetensors", "{'w': ", 0, NULL, 0, OSP_ERR_FORMAT, {"not valid JSON"}},
    {"not_object.safetensors",
     "[1, 2]",
     0,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"an array", "expected a JSON object"}},
    {"duplicate.safetensors",
     "{'w': {'dtype': 'U8', 'shape': [1], 'data_offsets': [0, 1]}, "
     "'w': {'dtype': 'U8', 'shape': [1], 'data_offsets': [0, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"duplicate object key", "\"w\""}},
    {"unknown_dtype.safetensors",
     "{'w': {'dtype': 'F7', 'shape': [1], 'data_offsets': [0, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "unknown dtype 'F7'"}},
    {"dtype_not_string.safetensors",
     "{'w': {'dtype': 4, 'shape': [1], 'data_offsets': [0, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "dtype is an integer"}},
    {"size_mismatch.safetensors",
     "{'blocks.0.ffn.0.weight': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 8]}}",
     8,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'blocks.0.ffn.0.weight'", "shape [2, 3] x F32 needs 24 bytes, data_offsets span 8"}},
    {"outside.safetensors",
     "{'w': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}",
     4,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "past the data section (4 bytes)"}},
    {"overlap.safetensors",
     "{'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}, "
     "'b': {'dtype': 'F32', 'shape': [2], 'data_offsets': [4, 12]}}",
     12,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'b' data_offsets [4, 12] overlap", "tensor 'a' [0, 8]"}},
    {"empty_inside.safetensors",
     "{'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}, "
     "'z': {'dtype': 'F32', 'shape': [0], 'data_offsets': [4, 4]}}",
     8,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'z'", "overlap tensor 'a'"}},
    {"gap.safetensors",
     "{'a': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]}, "
     "'b': {'dtype': 'F32', 'shape': [1], 'data_offsets': [8, 12]}}",
     12,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"bytes [4, 8) before tensor 'b'", "no gaps"}},
    {"gap_at_start.safetensors",
     "{'a': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4, 8]}}",
     8,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"bytes [0, 4) before tensor 'a'"}},
    {"trailing.safetensors",
     "{'a': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]}}",
     9,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"data section is 9 bytes", "cover only 4"}},
    {"no_tensors_trailing.safetensors", "{}", 1, NULL, 0, OSP_ERR_FORMAT, {"trailing"}},
    {"begin_after_end.safetensors",
     "{'w': {'dtype': 'U8', 'shape': [0], 'data_offsets': [4, 0]}}",
     4,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "[4, 0] begin after end"}},
    {"offsets_not_integers.safetensors",
     "{'w': {'dtype': 'U8', 'shape': [1], 'data_offsets': [0.0, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "data_offsets must be"}},
    {"offsets_three.safetensors",
     "{'w': {'dtype': 'U8', 'shape': [1], 'data_offsets': [0, 1, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "data_offsets must be"}},
    {"negative_dim.safetensors",
     "{'w': {'dtype': 'U8', 'shape': [-1], 'data_offsets': [0, 0]}}",
     0,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "shape[0] is not a non-negative integer"}},
    {"shape_not_array.safetensors",
     "{'w': {'dtype': 'U8', 'shape': 3, 'data_offsets': [0, 3]}}",
     3,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "shape is an integer"}},
    {"too_many_dims.safetensors",
     "{'w': {'dtype': 'U8', 'shape': [1, 1, 1, 1, 1, 1, 1, 1, 1], 'data_offsets': [0, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "9 dimensions, at most 8"}},
    {"overflow.safetensors",
     "{'w': {'dtype': 'F32', 'shape': [4294967296, 4294967296], 'data_offsets': [0, 0]}}",
     0,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "overflows"}},
    {"extra_key.safetensors",
     "{'w': {'dtype': 'U8', 'shape': [1], 'data_offsets': [0, 1], 'extra': 1}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "unexpected key 'extra'"}},
    {"missing_key.safetensors",
     "{'w': {'dtype': 'U8', 'data_offsets': [0, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "has no 'shape'"}},
    {"entry_not_object.safetensors",
     "{'w': [1]}",
     0,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"tensor 'w'", "is an array"}},
    {"metadata_not_strings.safetensors",
     "{'__metadata__': {'step': 3}, 'w': {'dtype': 'U8', 'shape': [1], 'data_offsets': [0, 1]}}",
     1,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"__metadata__['step'] is an integer"}},
    {"metadata_not_object.safetensors",
     "{'__metadata__': 'pt'}",
     0,
     NULL,
     0,
     OSP_ERR_FORMAT,
     {"__metadata__ is a string"}},
};

static unsigned char *bad_image_bytes(const bad_image *bad, size_t *size) {
  if (bad->header) return make_image(bad->header, bad->data_bytes, size);
  *size = bad->raw_size;
  unsigned char *copy = malloc(bad->raw_size + 1);
  memcpy(copy, bad->raw, bad->raw_size);
  return copy;
}

static void check_refused(const bad_image *bad, osp_status status, const char *label) {
  int ok = status == bad->status && message_mentions(label) && message_mentions(bad->mention[0]) &&
           message_mentions(bad->mention[1]);
  CHECK(ok);
  if (!ok)
    fprintf(stderr, "  %s: got \"%s\" (%s)\n", bad->file, osp_last_error(),
            osp_status_name(status));
}

/* Each image is refused from a file (osp_st_open) and from memory (osp_st_parse). */
static void test_bad_images(void) {
  for (size_t i = 0; i < sizeof bad_images / sizeof bad_images[0]; i++) {
    const bad_image *bad = &bad_images[i];
    size_t size;
    unsigned char *image = bad_image_bytes(bad, &size);
    char path[512];
    path_in_temp(bad->file, path, sizeof path);
    CHECK(write_file(path, image, size) == 0);
    osp_st_file file;
    check_refused(bad, osp_st_open(path, &file), path);
    CHECK(file.count == 0 && file.entries == NULL && file.map == NULL);
    osp_st_close(&file); /* nothing to close, and closing is harmless */
    check_refused(bad, osp_st_parse(bad->file, image, size, &file), bad->file);
    free(image);
  }
}

static void test_not_a_file(void) {
  osp_st_file file;
  CHECK(osp_st_open(temp_dir, &file) == OSP_ERR_IO);
  CHECK(message_mentions(temp_dir) && message_mentions("is a directory"));
  char path[512];
  path_in_temp("missing.safetensors", path, sizeof path);
  CHECK(osp_st_open(path, &file) == OSP_ERR_IO);
  CHECK(message_mentions(path) && message_mentions("No such file"));
}

/* ---- osp_st_expect ------------------------------------------------------------------------ */

static void test_expect(void) {
  char path[512];
  path_in_temp("expect.safetensors", path, sizeof path);
  const int64_t shape[2] = {2, 1};
  osp_st_write_entry entry = {"blocks.0.ffn.0.weight", OSP_ST_F32, 2, shape, f32_data};
  CHECK(osp_st_write(path, &entry, 1) == OSP_OK);
  osp_st_file file;
  CHECK(osp_st_open(path, &file) == OSP_OK);
  const osp_st_entry *found = NULL;
  CHECK(osp_st_expect(&file, "blocks.0.ffn.0.weight", 2, (const int64_t[]){2, 1}, &found) ==
        OSP_OK);
  CHECK(found == &file.entries[0]);
  CHECK(osp_st_expect(&file, "blocks.0.ffn.0.weight", 2, (const int64_t[]){-1, 1}, &found) ==
        OSP_OK);

  CHECK(osp_st_expect(&file, "blocks.0.ffn.0.weight", 2, (const int64_t[]){3, -1}, &found) ==
        OSP_ERR_SHAPE);
  CHECK(message_mentions(path) && message_mentions("tensor 'blocks.0.ffn.0.weight'"));
  CHECK(message_mentions("expected shape [3, *], found [2, 1]"));
  CHECK(osp_st_expect(&file, "blocks.0.ffn.0.weight", 1, (const int64_t[]){2}, &found) ==
        OSP_ERR_SHAPE);
  CHECK(message_mentions("expected shape [2], found [2, 1]"));

  CHECK(osp_st_expect(&file, "blocks.0.ffn.2.weight", 1, (const int64_t[]){2}, &found) ==
        OSP_ERR_MISSING);
  CHECK(message_mentions(path) && message_mentions("tensor 'blocks.0.ffn.2.weight' not found"));
  osp_st_close(&file);
}

/* ---- writer failures ---------------------------------------------------------------------- */

static void test_writer_failures(void) {
  const int64_t one = 1;
  osp_st_write_entry entries[2] = {{"w", OSP_ST_F32, 1, &one, f32_data},
                                   {"w", OSP_ST_F32, 1, &one, f32_data}};
  char path[512];

  path_in_temp("no_such_dir/out.safetensors", path, sizeof path);
  CHECK(osp_st_write(path, entries, 1) == OSP_ERR_IO);
  CHECK(message_mentions(path) && message_mentions("cannot create"));

  /* The target is a directory: the temporary file is written, the rename fails, and it is removed.
   */
  path_in_temp("a_directory", path, sizeof path);
  CHECK(mkdir(path, 0700) == 0);
  CHECK(osp_st_write(path, entries, 1) == OSP_ERR_IO);
  CHECK(message_mentions(path) && message_mentions("cannot rename"));

  path_in_temp("duplicate_names.safetensors", path, sizeof path);
  CHECK(osp_st_write(path, entries, 2) == OSP_ERR_ARGUMENT);
  CHECK(message_mentions(path) && message_mentions("tensor 'w' is given twice"));
  CHECK(access(path, F_OK) != 0);

  osp_st_write_entry negative = {"v", OSP_ST_F32, 1, (const int64_t[]){-2}, f32_data};
  CHECK(osp_st_write(path, &negative, 1) == OSP_ERR_ARGUMENT);
  CHECK(message_mentions("tensor 'v'") && message_mentions("[-2]"));

  CHECK(count_temp_files() == 0);
}

/* ---- shards ------------------------------------------------------------------------------ */

static void write_index(const char *name, const char *json) {
  char path[512];
  CHECK(write_file(path_in_temp(name, path, sizeof path), json, strlen(json)) == 0);
}

static void write_shard(const char *name, const char *tensor, float value) {
  char path[512];
  float data[2] = {value, value + 1};
  osp_st_write_entry entry = {tensor, OSP_ST_F32, 1, (const int64_t[]){2}, data};
  CHECK(osp_st_write(path_in_temp(name, path, sizeof path), &entry, 1) == OSP_OK);
}

/* Opens index `name`, expecting `status` and (on failure) a message mentioning `text`. */
static void check_index(const char *name, osp_status status, const char *text) {
  char path[512];
  osp_st_file file;
  CHECK(osp_st_open(path_in_temp(name, path, sizeof path), &file) == status);
  if (status == OSP_OK) osp_st_close(&file);
  else CHECK(message_mentions(path) && message_mentions(text));
}

static void test_shards(void) {
  write_shard("m-1.safetensors", "a", 1);
  write_shard("m-2.safetensors", "b", 5);
  write_shard("m-3.safetensors", "a", 9); /* a second 'a' */
  write_index("m.safetensors.index.json",
              "{\"metadata\": {\"total_size\": 16}, \"weight_map\": "
              "{\"a\": \"m-1.safetensors\", \"b\": \"m-2.safetensors\"}}");
  char path[512];
  osp_st_file file;
  CHECK(osp_st_open(path_in_temp("m.safetensors.index.json", path, sizeof path), &file) == OSP_OK);
  CHECK(file.count == 2 && file.shard_count == 2);
  const osp_st_entry *b = osp_st_find(&file, "b");
  CHECK(b && b->file && strstr(b->file, "m-2.safetensors"));
  float values[2] = {0};
  if (b) osp_st_to_f32(b, values);
  CHECK(values[0] == 5 && values[1] == 6);
  /* A wrong shape names the shard that holds the tensor. */
  const osp_st_entry *found;
  CHECK(osp_st_expect(&file, "b", 1, (const int64_t[]){3}, &found) == OSP_ERR_SHAPE);
  CHECK(message_mentions("m-2.safetensors") && message_mentions("tensor 'b'"));
  osp_st_close(&file);

  write_index("missing.json", "{\"weight_map\": {\"a\": \"m-1.safetensors\", \"c\": \"gone.safetensors\"}}");
  check_index("missing.json", OSP_ERR_MISSING, "shard 'gone.safetensors' is listed in the index");
  write_index("wrong_shard.json", "{\"weight_map\": {\"b\": \"m-1.safetensors\"}}");
  check_index("wrong_shard.json", OSP_ERR_MISSING, "tensor 'b' is listed in shard 'm-1.safetensors'");
  write_index("escape.json", "{\"weight_map\": {\"a\": \"../m-1.safetensors\"}}");
  check_index("escape.json", OSP_ERR_FORMAT, "is not a file name in the index's folder");
  write_index("no_map.json", "{\"metadata\": {}}");
  check_index("no_map.json", OSP_ERR_FORMAT, "no \"weight_map\" object");
  write_index("not_json.json", "{\"weight_map\": ");
  check_index("not_json.json", OSP_ERR_FORMAT, "not a safetensors index");
}

/* A tensor in two shards is refused, naming both. */
static void test_shards_duplicate_tensor(void) {
  char path[512];
  float data[2] = {1, 2};
  const int64_t shape[1] = {2};
  osp_st_write_entry entries[2] = {{"a", OSP_ST_F32, 1, shape, data}, {"b", OSP_ST_F32, 1, shape, data}};
  CHECK(osp_st_write(path_in_temp("d-2.safetensors", path, sizeof path), entries, 2) == OSP_OK);
  write_shard("d-1.safetensors", "a", 1);
  write_index("d.json", "{\"weight_map\": {\"a\": \"d-1.safetensors\", \"b\": \"d-2.safetensors\"}}");
  check_index("d.json", OSP_ERR_FORMAT, "tensor 'a' is in two shards");
}

static void test_locate(void) {
  char path[512], found[512];
  const char *const stems[] = {"diffusion_pytorch_model", "model", NULL};
  CHECK(osp_st_locate(temp_dir, stems, found, sizeof found) == OSP_ERR_MISSING);
  CHECK(message_mentions("diffusion_pytorch_model.safetensors.index.json") &&
        message_mentions("model.safetensors"));
  write_shard("model.safetensors", "a", 1);
  CHECK(osp_st_locate(temp_dir, stems, found, sizeof found) == OSP_OK);
  CHECK(!strcmp(found, path_in_temp("model.safetensors", path, sizeof path)));
  write_index("diffusion_pytorch_model.safetensors.index.json", "{}");
  CHECK(osp_st_locate(temp_dir, stems, found, sizeof found) == OSP_OK);
  CHECK(strstr(found, "diffusion_pytorch_model.safetensors.index.json") != NULL);
}

int main(void) {
  if (!mkdtemp(temp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_dtype_names();
  test_round_trip_every_dtype();
  test_no_tensors();
  test_overwrite();
  test_metadata_is_kept_apart();
  test_bad_images();
  test_not_a_file();
  test_expect();
  test_writer_failures();
  test_shards();
  test_shards_duplicate_tensor();
  test_locate();
  remove_temp_dir();
  return test_summary("test_safetensors");
}
