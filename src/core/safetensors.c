/* safetensors reading and writing. The format (github.com/huggingface/safetensors, "Format"):
 *   u64 little-endian N | N bytes of JSON header | data section
 * The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, with the
 * offsets relative to the data section; an optional "__metadata__" maps strings to strings. */
#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/safetensors_shards.h"
#include "core/status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor data is little-endian on disk and read in place: OSP needs a little-endian host"
#endif

enum { LENGTH_FIELD_BYTES = 8, HEADER_ALIGNMENT = 8 };
/* Headers past this size are refused before parsing, as the reference implementation does. */
static const uint64_t MAX_HEADER_BYTES = 100u * 1000u * 1000u;
static const char METADATA_KEY[] = "__metadata__";
/* Entries with more elements are converted by several threads. */
static const int64_t PARALLEL_CONVERT_MIN = 1 << 16;

/* ---- dtypes ------------------------------------------------------------------------------- */

/* Reads one element as float32. Data offsets need not be aligned, so every read is a memcpy. */
typedef float (*element_reader)(const unsigned char *element);

#define DEFINE_NUMBER_READER(function, ctype)           \
  static float function(const unsigned char *element) { \
    ctype value;                                        \
    memcpy(&value, element, sizeof value);              \
    return (float)value;                                \
  }
DEFINE_NUMBER_READER(read_u8, uint8_t)
DEFINE_NUMBER_READER(read_i8, int8_t)
DEFINE_NUMBER_READER(read_i16, int16_t)
DEFINE_NUMBER_READER(read_u16, uint16_t)
DEFINE_NUMBER_READER(read_i32, int32_t)
DEFINE_NUMBER_READER(read_u32, uint32_t)
DEFINE_NUMBER_READER(read_i64, int64_t)
DEFINE_NUMBER_READER(read_u64, uint64_t)
DEFINE_NUMBER_READER(read_f32, float)
DEFINE_NUMBER_READER(read_f64, double)
#undef DEFINE_NUMBER_READER

static float read_bool(const unsigned char *element) { return element[0] ? 1.0f : 0.0f; }

static float read_f16(const unsigned char *element) {
  uint16_t bits;
  memcpy(&bits, element, sizeof bits);
  return osp_f16_to_f32(bits);
}

static float read_bf16(const unsigned char *element) {
  uint16_t bits;
  memcpy(&bits, element, sizeof bits);
  return osp_bf16_to_f32(bits);
}

static float read_f8e4m3(const unsigned char *element) { return osp_f8e4m3_to_f32(element[0]); }
static float read_f8e5m2(const unsigned char *element) { return osp_f8e5m2_to_f32(element[0]); }

static const struct {
  const char *name;
  size_t size;
  element_reader read;
} dtype_table[] = {
    [OSP_ST_BOOL] = {"BOOL", 1, read_bool},
    [OSP_ST_U8] = {"U8", 1, read_u8},
    [OSP_ST_I8] = {"I8", 1, read_i8},
    [OSP_ST_I16] = {"I16", 2, read_i16},
    [OSP_ST_U16] = {"U16", 2, read_u16},
    [OSP_ST_F16] = {"F16", 2, read_f16},
    [OSP_ST_BF16] = {"BF16", 2, read_bf16},
    [OSP_ST_I32] = {"I32", 4, read_i32},
    [OSP_ST_U32] = {"U32", 4, read_u32},
    [OSP_ST_F32] = {"F32", 4, read_f32},
    [OSP_ST_F64] = {"F64", 8, read_f64},
    [OSP_ST_I64] = {"I64", 8, read_i64},
    [OSP_ST_U64] = {"U64", 8, read_u64},
    [OSP_ST_F8_E4M3] = {"F8_E4M3", 1, read_f8e4m3},
    [OSP_ST_F8_E5M2] = {"F8_E5M2", 1, read_f8e5m2},
};
enum { DTYPE_COUNT = sizeof dtype_table / sizeof dtype_table[0] };

static bool dtype_is_valid(osp_st_dtype dtype) { return (unsigned)dtype < DTYPE_COUNT; }

size_t osp_st_dtype_size(osp_st_dtype dtype) {
  return dtype_is_valid(dtype) ? dtype_table[dtype].size : 0;
}

const char *osp_st_dtype_name(osp_st_dtype dtype) {
  return dtype_is_valid(dtype) ? dtype_table[dtype].name : "?";
}

static bool dtype_from_name(const char *name, osp_st_dtype *dtype) {
  for (int i = 0; i < DTYPE_COUNT; i++) {
    if (strcmp(name, dtype_table[i].name) == 0) {
      *dtype = (osp_st_dtype)i;
      return true;
    }
  }
  return false;
}

/* "BOOL U8 I8 ...", for messages. */
static const char *dtype_names(char *buf, size_t size) {
  size_t at = 0;
  buf[0] = '\0';
  for (int i = 0; i < DTYPE_COUNT && at < size; i++)
    at += (size_t)snprintf(buf + at, size - at, i ? " %s" : "%s", dtype_table[i].name);
  return buf;
}

/* ---- sizes and shapes --------------------------------------------------------------------- */

/* numel x dtype size in bytes; false when a dimension is negative or a partial product of the
 * dimensions passes INT64_MAX (so osp_st_numel never overflows) or the byte count passes 64 bits.
 * Like the reference implementation, [2^40, 2^40, 0] overflows although its product is 0. */
static bool tensor_bytes(osp_st_dtype dtype, int ndim, const int64_t *shape, uint64_t *bytes) {
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || (shape[i] > 0 && numel > INT64_MAX / shape[i])) return false;
    numel *= shape[i];
  }
  uint64_t size = osp_st_dtype_size(dtype);
  if ((uint64_t)numel > UINT64_MAX / size) return false;
  *bytes = (uint64_t)numel * size;
  return true;
}

/* A tensor that carries only a shape, for tensor.h's shape formatter and check (which read only
 * ndim and shape). */
static osp_tensor shape_only(int ndim, const int64_t *shape) {
  osp_tensor view = {.ndim = ndim};
  for (int i = 0; i < ndim; i++) view.shape[i] = shape[i];
  return view;
}

/* "[8960, 1536]" */
static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t size) {
  osp_tensor view = shape_only(ndim, shape);
  return osp_shape_string(&view, buf, size);
}

int64_t osp_st_numel(const osp_st_entry *entry) {
  int64_t numel = 1;
  for (int i = 0; i < entry->ndim; i++) numel *= entry->shape[i];
  return numel;
}

/* ---- reading the header ------------------------------------------------------------------- */

static uint64_t read_u64_le(const unsigned char *bytes) {
  uint64_t value = 0;
  for (int i = LENGTH_FIELD_BYTES - 1; i >= 0; i--) value = (value << 8) | bytes[i];
  return value;
}

static void write_u64_le(uint64_t value, unsigned char *bytes) {
  for (int i = 0; i < LENGTH_FIELD_BYTES; i++) bytes[i] = (unsigned char)(value >> (8 * i));
}

/* The header length N: the file must hold the 8-byte field and all N bytes after it. */
static osp_status read_header_length(const char *label, const unsigned char *bytes, size_t size,
                                     uint64_t *header_bytes) {
  if (size < LENGTH_FIELD_BYTES)
    return osp_fail(OSP_ERR_FORMAT, "%s: file is %zu bytes, too short for the 8-byte header length",
                    label, size);
  uint64_t n = read_u64_le(bytes);
  if (n > MAX_HEADER_BYTES)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit", label, n,
                    MAX_HEADER_BYTES);
  if (n > size - LENGTH_FIELD_BYTES)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: header length %" PRIu64
                    " runs past the end of the file (%zu bytes follow "
                    "the length field)",
                    label, n, size - LENGTH_FIELD_BYTES);
  *header_bytes = n;
  return OSP_OK;
}

static const char *json_type_name(const json_t *value) {
  switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
  }
  return "an unknown JSON value";
}

/* Parses the header text; duplicate keys are an error, as is anything but one JSON object. */
static osp_status load_header_object(const char *label, const unsigned char *text, size_t size,
                                     json_t **root) {
  json_error_t error;
  json_t *value =
      json_loadb((const char *)text, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
  if (!value)
    return osp_fail(OSP_ERR_FORMAT, "%s: header is not valid JSON: %s (line %d, column %d)", label,
                    error.text, error.line, error.column);
  if (!json_is_object(value)) {
    osp_status status = osp_fail(OSP_ERR_FORMAT, "%s: header is %s, expected a JSON object", label,
                                 json_type_name(value));
    json_decref(value);
    return status;
  }
  *root = value;
  return OSP_OK;
}

static osp_status check_metadata(const char *label, json_t *metadata) {
  if (!json_is_object(metadata))
    return osp_fail(OSP_ERR_FORMAT, "%s: %s is %s, expected an object of strings", label,
                    METADATA_KEY, json_type_name(metadata));
  const char *key;
  json_t *value;
  json_object_foreach(metadata, key, value) {
    if (!json_is_string(value))
      return osp_fail(OSP_ERR_FORMAT, "%s: %s['%s'] is %s, expected a string", label, METADATA_KEY,
                      key, json_type_name(value));
  }
  return OSP_OK;
}

/* Keeps the (checked) metadata strings as key, value pairs. */
static osp_status keep_metadata(const char *label, json_t *metadata, osp_st_file *file) {
  file->metadata = calloc(2 * json_object_size(metadata) + 1, sizeof *file->metadata);
  if (!file->metadata) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory for %s", label, METADATA_KEY);
  const char *key;
  json_t *value;
  json_object_foreach(metadata, key, value) {
    char **pair = &file->metadata[2 * file->metadata_count];
    pair[0] = strdup(key);
    pair[1] = strdup(json_string_value(value));
    file->metadata_count++;
    if (!pair[0] || !pair[1]) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory for %s", label, METADATA_KEY);
  }
  return OSP_OK;
}

/* A JSON integer >= 0 (a dimension or an offset). */
static bool json_to_count(const json_t *value, int64_t *count) {
  if (!json_is_integer(value) || json_integer_value(value) < 0) return false;
  *count = json_integer_value(value);
  return true;
}

/* The entry parsers below say what is wrong; parse_entry prefixes the file and the tensor. */

static const char *const ENTRY_KEYS[] = {"dtype", "shape", "data_offsets"};
enum { ENTRY_KEY_COUNT = sizeof ENTRY_KEYS / sizeof ENTRY_KEYS[0] };

static bool is_entry_key(const char *key) {
  for (int i = 0; i < ENTRY_KEY_COUNT; i++)
    if (strcmp(key, ENTRY_KEYS[i]) == 0) return true;
  return false;
}

/* An entry is an object with exactly the keys dtype, shape and data_offsets. */
static osp_status check_entry_keys(json_t *info) {
  if (!json_is_object(info))
    return osp_fail(OSP_ERR_FORMAT, "is %s, expected an object with dtype, shape and data_offsets",
                    json_type_name(info));
  for (void *it = json_object_iter(info); it; it = json_object_iter_next(info, it))
    if (!is_entry_key(json_object_iter_key(it)))
      return osp_fail(OSP_ERR_FORMAT, "has an unexpected key '%s'", json_object_iter_key(it));
  for (int i = 0; i < ENTRY_KEY_COUNT; i++)
    if (!json_object_get(info, ENTRY_KEYS[i]))
      return osp_fail(OSP_ERR_FORMAT, "has no '%s'", ENTRY_KEYS[i]);
  return OSP_OK;
}

static osp_status parse_dtype(const json_t *value, osp_st_dtype *dtype) {
  if (!json_is_string(value))
    return osp_fail(OSP_ERR_FORMAT, "dtype is %s, expected a string", json_type_name(value));
  char known[128];
  if (!dtype_from_name(json_string_value(value), dtype))
    return osp_fail(OSP_ERR_FORMAT, "unknown dtype '%s' (expected one of %s)",
                    json_string_value(value), dtype_names(known, sizeof known));
  return OSP_OK;
}

static osp_status parse_shape(const json_t *value, int *ndim, int64_t *shape) {
  if (!json_is_array(value))
    return osp_fail(OSP_ERR_FORMAT, "shape is %s, expected an array", json_type_name(value));
  size_t n = json_array_size(value);
  if (n > OSP_MAX_DIMS)
    return osp_fail(OSP_ERR_FORMAT, "shape has %zu dimensions, at most %d are supported", n,
                    OSP_MAX_DIMS);
  for (size_t i = 0; i < n; i++)
    if (!json_to_count(json_array_get(value, i), &shape[i]))
      return osp_fail(OSP_ERR_FORMAT, "shape[%zu] is not a non-negative integer", i);
  *ndim = (int)n;
  return OSP_OK;
}

static osp_status parse_offsets(const json_t *value, uint64_t *begin, uint64_t *end) {
  int64_t first, last;
  if (!json_is_array(value) || json_array_size(value) != 2 ||
      !json_to_count(json_array_get(value, 0), &first) ||
      !json_to_count(json_array_get(value, 1), &last))
    return osp_fail(OSP_ERR_FORMAT, "data_offsets must be [begin, end], two non-negative integers");
  if (first > last)
    return osp_fail(OSP_ERR_FORMAT, "data_offsets [%" PRId64 ", %" PRId64 "] begin after end",
                    first, last);
  *begin = (uint64_t)first;
  *end = (uint64_t)last;
  return OSP_OK;
}

/* The byte range must hold exactly shape x dtype size bytes and lie inside the data section. */
static osp_status check_byte_range(const osp_st_entry *entry, uint64_t data_bytes) {
  char shape[160];
  const char *dtype = osp_st_dtype_name(entry->dtype);
  uint64_t needed;
  if (!tensor_bytes(entry->dtype, entry->ndim, entry->shape, &needed))
    return osp_fail(OSP_ERR_FORMAT, "shape %s x %s is too large (the byte count overflows)",
                    shape_text(entry->ndim, entry->shape, shape, sizeof shape), dtype);
  if (entry->end - entry->begin != needed)
    return osp_fail(OSP_ERR_FORMAT,
                    "shape %s x %s needs %" PRIu64 " bytes, data_offsets span %" PRIu64,
                    shape_text(entry->ndim, entry->shape, shape, sizeof shape), dtype, needed,
                    entry->end - entry->begin);
  if (entry->end > data_bytes)
    return osp_fail(OSP_ERR_FORMAT,
                    "data_offsets [%" PRIu64 ", %" PRIu64 "] end past the data section (%" PRIu64
                    " bytes)",
                    entry->begin, entry->end, data_bytes);
  return OSP_OK;
}

static osp_status parse_entry_fields(json_t *info, uint64_t data_bytes, osp_st_entry *entry) {
  OSP_TRY(check_entry_keys(info));
  OSP_TRY(parse_dtype(json_object_get(info, "dtype"), &entry->dtype));
  OSP_TRY(parse_shape(json_object_get(info, "shape"), &entry->ndim, entry->shape));
  OSP_TRY(parse_offsets(json_object_get(info, "data_offsets"), &entry->begin, &entry->end));
  return check_byte_range(entry, data_bytes);
}

static osp_status parse_entry(const char *label, const char *name, json_t *info,
                              const unsigned char *data, uint64_t data_bytes, osp_st_entry *entry) {
  osp_status status = parse_entry_fields(info, data_bytes, entry);
  if (status != OSP_OK) return osp_fail_context(status, "%s: tensor '%s'", label, name);
  entry->name = strdup(name);
  if (!entry->name)
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory copying tensor names", label);
  entry->data = data + entry->begin;
  return OSP_OK;
}

/* Fills file->entries from the header object, in the header's order. */
static osp_status parse_entries(const char *label, json_t *root, const unsigned char *data,
                                uint64_t data_bytes, osp_st_file *file) {
  size_t tensors = json_object_size(root) - (json_object_get(root, METADATA_KEY) ? 1 : 0);
  file->entries = tensors ? calloc(tensors, sizeof *file->entries) : NULL;
  if (tensors && !file->entries)
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory for %zu tensors", label, tensors);
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (strcmp(key, METADATA_KEY) == 0) {
      OSP_TRY(check_metadata(label, value));
      OSP_TRY(keep_metadata(label, value, file));
    } else {
      OSP_TRY(parse_entry(label, key, value, data, data_bytes, &file->entries[file->count]));
      file->count++;
    }
  }
  return OSP_OK;
}

/* Orders entries by byte range; the name breaks ties between empty tensors at one offset. */
static int compare_ranges(const void *a, const void *b) {
  const osp_st_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* The format allows no holes: sorted by offset, each range starts where the previous one ended,
 * the first at 0 and the last ending at the end of the data section. */
static osp_status check_ranges_tile_data(const char *label, const osp_st_file *file,
                                         uint64_t data_bytes) {
  uint64_t covered = 0;
  for (int i = 0; i < file->count; i++) {
    const osp_st_entry *entry = &file->entries[i];
    if (entry->begin < covered) {
      const osp_st_entry *previous = &file->entries[i - 1];
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64
                      "] overlap tensor '%s' [%" PRIu64 ", %" PRIu64 "]",
                      label, entry->name, entry->begin, entry->end, previous->name, previous->begin,
                      previous->end);
    }
    if (entry->begin > covered)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: data bytes [%" PRIu64 ", %" PRIu64
                      ") before tensor '%s' belong to "
                      "no tensor (the format allows no gaps)",
                      label, covered, entry->begin, entry->name);
    covered = entry->end;
  }
  if (covered != data_bytes)
    return osp_fail(OSP_ERR_FORMAT,
                    "%s: data section is %" PRIu64 " bytes but the tensors cover only %" PRIu64
                    " (trailing bytes)",
                    label, data_bytes, covered);
  return OSP_OK;
}

static osp_status parse_image(const char *label, const unsigned char *bytes, size_t size,
                              osp_st_file *file) {
  uint64_t header_bytes = 0;
  OSP_TRY(read_header_length(label, bytes, size, &header_bytes));
  json_t *root = NULL;
  OSP_TRY(load_header_object(label, bytes + LENGTH_FIELD_BYTES, header_bytes, &root));
  const unsigned char *data = bytes + LENGTH_FIELD_BYTES + header_bytes;
  uint64_t data_bytes = size - LENGTH_FIELD_BYTES - header_bytes;
  osp_status status = parse_entries(label, root, data, data_bytes, file);
  json_decref(root);
  OSP_TRY(status);
  if (file->count > 1)
    qsort(file->entries, (size_t)file->count, sizeof *file->entries, compare_ranges);
  return check_ranges_tile_data(label, file, data_bytes);
}

osp_status osp_st_parse(const char *label, const unsigned char *bytes, size_t size,
                        osp_st_file *file) {
  memset(file, 0, sizeof *file);
  file->path = strdup(label);
  if (!file->path) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
  file->map = (unsigned char *)bytes; /* not written through: the map is read-only */
  file->map_size = size;
  osp_status status = parse_image(label, bytes, size, file);
  if (status != OSP_OK) osp_st_close(file);
  for (int i = 0; i < file->count; i++) file->entries[i].file = file->path;
  return status;
}

/* ---- opening files ------------------------------------------------------------------------ */

/* The size of an open file, which must be a non-empty regular file. */
static osp_status regular_file_size(const char *path, int fd, size_t *size) {
  struct stat info;
  if (fstat(fd, &info) != 0)
    return osp_fail(OSP_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  if (S_ISDIR(info.st_mode))
    return osp_fail(OSP_ERR_IO, "%s: is a directory, expected a safetensors file", path);
  if (!S_ISREG(info.st_mode)) return osp_fail(OSP_ERR_IO, "%s: is not a regular file", path);
  if (info.st_size == 0)
    return osp_fail(OSP_ERR_FORMAT, "%s: file is empty (0 bytes), expected a safetensors header",
                    path);
  *size = (size_t)info.st_size;
  return OSP_OK;
}

static osp_status map_file(const char *path, unsigned char **map, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return osp_fail(OSP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  osp_status status = regular_file_size(path, fd, size);
  if (status == OSP_OK) {
    void *address = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED)
      status = osp_fail(OSP_ERR_IO, "%s: cannot map %zu bytes: %s", path, *size, strerror(errno));
    else
      *map = address;
  }
  close(fd);
  return status;
}

osp_status osp_st_open(const char *path, osp_st_file *file) {
  memset(file, 0, sizeof *file);
  if (osp_st_is_index_path(path)) return osp_st_open_index(path, file);
  unsigned char *map = NULL;
  size_t size = 0;
  OSP_TRY(map_file(path, &map, &size));
  osp_status status = osp_st_parse(path, map, size, file);
  if (status != OSP_OK) {
    munmap(map, size);
    return status;
  }
  file->mapped = 1;
  return OSP_OK;
}

void osp_st_close(osp_st_file *file) {
  if (file->shard_count) {
    osp_st_close_shards(file);
    return;
  }
  for (int i = 0; i < file->count; i++) free(file->entries[i].name);
  free(file->entries);
  for (int i = 0; i < 2 * file->metadata_count; i++) free(file->metadata[i]);
  free(file->metadata);
  free(file->path);
  if (file->mapped) munmap(file->map, file->map_size);
  memset(file, 0, sizeof *file);
}

/* ---- using entries ------------------------------------------------------------------------ */

const osp_st_entry *osp_st_find(const osp_st_file *file, const char *name) {
  for (int i = 0; i < file->count; i++)
    if (strcmp(file->entries[i].name, name) == 0) return &file->entries[i];
  return NULL;
}

const char *osp_st_metadata(const osp_st_file *file, const char *key) {
  for (int i = 0; i < file->metadata_count; i++)
    if (strcmp(file->metadata[2 * i], key) == 0) return file->metadata[2 * i + 1];
  return NULL;
}

void osp_st_to_f32(const osp_st_entry *entry, float *dst) {
  int64_t n = osp_st_numel(entry);
  size_t size = dtype_table[entry->dtype].size;
  element_reader read = dtype_table[entry->dtype].read;
#pragma omp parallel for if (n >= PARALLEL_CONVERT_MIN) schedule(static)
  for (int64_t i = 0; i < n; i++) dst[i] = read(entry->data + (size_t)i * size);
}

int osp_st_next_unused(const osp_st_file *file, const osp_st_entry *const *found, int count, int start) {
  for (int i = start < 0 ? 0 : start; i < file->count; i++) {
    bool used = false;
    for (int k = 0; k < count && !used; k++) used = found[k] == &file->entries[i];
    if (!used) return i;
  }
  return -1;
}

/* float32 data in the mapped file is used in place when it is aligned for float loads. */
static bool usable_in_place(const osp_st_entry *e) {
  return e->dtype == OSP_ST_F32 && (uintptr_t)e->data % sizeof(float) == 0;
}

size_t osp_st_f32_copy_bytes(const osp_st_entry *entry) {
  return usable_in_place(entry) ? 0 : osp_arena_align((size_t)osp_st_numel(entry) * sizeof(float));
}

osp_status osp_st_view_f32(const osp_st_entry *entry, osp_arena *arena, int ndim, const int64_t *shape,
                           osp_tensor *out) {
  if (usable_in_place(entry)) {
    *out = osp_tensor_make((void *)entry->data, OSP_F32, OSP_CPU, ndim, shape);
    return OSP_OK;
  }
  OSP_TRY(osp_arena_tensor(arena, OSP_F32, ndim, shape, out));
  osp_st_to_f32(entry, out->data);
  return OSP_OK;
}

osp_status osp_st_expect(const osp_st_file *file, const char *name, int ndim, const int64_t *shape,
                         const osp_st_entry **out) {
  const osp_st_entry *entry = osp_st_find(file, name);
  if (!entry)
    return osp_fail(OSP_ERR_MISSING, "%s: tensor '%s' not found (the file has %d tensors)",
                    file->path, name, file->count);
  osp_tensor view = shape_only(entry->ndim, entry->shape);
  char what[512];
  snprintf(what, sizeof what, "%s: tensor '%s'", entry->file, name);
  OSP_TRY(osp_check_shape(what, &view, ndim, shape));
  *out = entry;
  return OSP_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* [d0, d1, ...], or NULL when out of memory. */
static json_t *shape_array(int ndim, const int64_t *shape) {
  json_t *array = json_array();
  for (int i = 0; array && i < ndim; i++) {
    if (json_array_append_new(array, json_integer(shape[i])) != 0) {
      json_decref(array);
      array = NULL;
    }
  }
  return array;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, end]} for one entry. */
static json_t *entry_header(const osp_st_write_entry *entry, uint64_t begin, uint64_t end) {
  json_t *shape = shape_array(entry->ndim, entry->shape);
  if (!shape) return NULL;
  return json_pack("{s:s, s:o, s:[I, I]}", "dtype", osp_st_dtype_name(entry->dtype), "shape", shape,
                   "data_offsets", (json_int_t)begin, (json_int_t)end);
}

static osp_status check_write_entry(const char *path, const osp_st_write_entry *entry,
                                    uint64_t *bytes) {
  if (!entry->name) return osp_fail(OSP_ERR_ARGUMENT, "%s: a tensor has no name", path);
  const char *name = entry->name;
  if (strcmp(name, METADATA_KEY) == 0)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: '%s' is reserved for metadata, not a tensor name", path,
                    name);
  if (!dtype_is_valid(entry->dtype))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: tensor '%s': dtype %d is not an osp_st_dtype", path,
                    name, (int)entry->dtype);
  if (entry->ndim < 0 || entry->ndim > OSP_MAX_DIMS || (entry->ndim > 0 && !entry->shape))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: tensor '%s': ndim %d needs a shape and must be 0..%d",
                    path, name, entry->ndim, OSP_MAX_DIMS);
  char shape[160];
  if (!tensor_bytes(entry->dtype, entry->ndim, entry->shape, bytes))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: tensor '%s': shape %s has a negative or too large size",
                    path, name, shape_text(entry->ndim, entry->shape, shape, sizeof shape));
  if (*bytes > 0 && !entry->data)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: tensor '%s': %" PRIu64 " bytes but no data", path, name,
                    *bytes);
  return OSP_OK;
}

/* The header object for `entries`, their data laid out back to back in the given order. */
static osp_status build_header(const char *path, const osp_st_write_entry *entries, int count,
                               json_t **header) {
  json_t *root = json_object();
  if (!root) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory building the header", path);
  uint64_t offset = 0;
  for (int i = 0; i < count; i++) {
    uint64_t bytes = 0;
    osp_status status = check_write_entry(path, &entries[i], &bytes);
    if (status == OSP_OK && json_object_get(root, entries[i].name))
      status = osp_fail(OSP_ERR_ARGUMENT, "%s: tensor '%s' is given twice", path, entries[i].name);
    if (status == OSP_OK &&
        json_object_set_new(root, entries[i].name,
                            entry_header(&entries[i], offset, offset + bytes)) != 0)
      status = osp_fail(OSP_ERR_ARGUMENT, "%s: tensor '%s': name not UTF-8, or out of memory", path,
                        entries[i].name);
    if (status != OSP_OK) {
      json_decref(root);
      return status;
    }
    offset += bytes;
  }
  *header = root;
  return OSP_OK;
}

/* Length field, header padded with spaces to a multiple of 8 bytes (so the data section starts
 * aligned), then the data. False on a write error, with errno set. */
static bool write_image(FILE *out, const char *header, const osp_st_write_entry *entries,
                        int count) {
  size_t length = strlen(header);
  size_t padded = (length + HEADER_ALIGNMENT - 1) / HEADER_ALIGNMENT * HEADER_ALIGNMENT;
  unsigned char length_field[LENGTH_FIELD_BYTES];
  write_u64_le(padded, length_field);
  static const char spaces[HEADER_ALIGNMENT] = "        ";
  if (fwrite(length_field, 1, sizeof length_field, out) != sizeof length_field ||
      fwrite(header, 1, length, out) != length ||
      fwrite(spaces, 1, padded - length, out) != padded - length)
    return false;
  for (int i = 0; i < count; i++) {
    uint64_t bytes = 0;
    tensor_bytes(entries[i].dtype, entries[i].ndim, entries[i].shape, &bytes); /* checked before */
    if (bytes > 0 && fwrite(entries[i].data, 1, bytes, out) != bytes) return false;
  }
  return true;
}

/* Writes the image to `temp` and renames it over `path`; removes `temp` on any failure. */
static osp_status write_and_rename(const char *path, const char *temp, const char *header,
                                   const osp_st_write_entry *entries, int count) {
  FILE *out = fopen(temp, "wb");
  if (!out) return osp_fail(OSP_ERR_IO, "%s: cannot create %s: %s", path, temp, strerror(errno));
  bool written = write_image(out, header, entries, count);
  int write_errno = errno;
  bool closed = fclose(out) == 0;
  osp_status status = OSP_OK;
  if (!written || !closed)
    status = osp_fail(OSP_ERR_IO, "%s: cannot write %s: %s", path, temp,
                      strerror(written ? errno : write_errno));
  else if (rename(temp, path) != 0)
    status = osp_fail(OSP_ERR_IO, "%s: cannot rename %s over it: %s", path, temp, strerror(errno));
  if (status != OSP_OK) remove(temp);
  return status;
}

osp_status osp_st_write(const char *path, const osp_st_write_entry *entries, int count) {
  if (count < 0 || (count > 0 && !entries))
    return osp_fail(OSP_ERR_ARGUMENT, "%s: %d tensors to write, expected a count >= 0 and entries",
                    path, count);
  json_t *header = NULL;
  OSP_TRY(build_header(path, entries, count, &header));
  char *text = json_dumps(header, JSON_COMPACT);
  json_decref(header);
  size_t temp_size = strlen(path) + 32;
  char *temp = malloc(temp_size);
  osp_status status;
  if (!text || !temp) {
    status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory writing the header", path);
  } else {
    snprintf(temp, temp_size, "%s.tmp.%ld", path, (long)getpid());
    status = write_and_rename(path, temp, text, entries, count);
  }
  free(temp);
  free(text);
  return status;
}
