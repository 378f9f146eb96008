/* The training data reader (src/pipeline/dataset.h): shards written to a temporary directory and
 * read back (content in every float dtype, name order, batch order across epochs), the shuffle (a
 * permutation per epoch, different between epochs, fixed by the seed), saving and restoring the
 * position, data-parallel replicas, the prefetch thread over many batches of the synthetic source,
 * a failure inside the thread, and every error message at open. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/rng.h"
#include "pipeline/dataset.h"
#include "ref_case.h"

static char temp_dir[] = "/tmp/osp_test_dataset_XXXXXX";

/* ---- Writing shards ----------------------------------------------------------------------- */

typedef struct {
  int64_t frames, height, width, tokens, text_dim;
} sizes;

static const sizes SIZES = {2, 3, 4, 5, 6};

/* A shard to write: samples first .. first + count − 1 with the values below. The last fields
 * break it on purpose (0: as a good shard has it). */
typedef struct {
  const char *name;
  int64_t first, count;
  osp_st_dtype latents_dtype, context_dtype;
  int length_bits; /* context_lengths: 0 (none), 32 or 64 */
  sizes size;
  int64_t channels;      /* 0: 16 */
  int64_t context_count; /* 0: count */
  bool no_context;
  float bad_value; /* 0, or a value (NaN) put in latents element 5 of the shard's last sample */
} shard_spec;

/* The test's values: small integers, exact in every float dtype written. */
static float latent_value(int64_t id, int64_t element) { return (float)((id * 7 + element) % 128); }
static int64_t context_length(int64_t id, int64_t tokens) { return 1 + id % tokens; }
static float context_value(int64_t id, int64_t row, int64_t column, int64_t text_dim) {
  return (float)(1 + (id * 13 + row * text_dim + column) % 100);
}

/* Row r of sample id's context: its values up to the sample's length (all rows where the shard
 * has no lengths), zeros after. */
static float expected_context(int64_t id, int64_t row, int64_t column, const sizes *size,
                              bool has_lengths) {
  const bool padding = has_lengths && row >= context_length(id, size->tokens);
  return padding ? 0.0f : context_value(id, row, column, size->text_dim);
}

/* n values as `dtype` (a float dtype or I32) into dst. */
static void encode(osp_st_dtype dtype, const float *values, int64_t n, void *dst) {
  for (int64_t i = 0; i < n; i++) {
    if (dtype == OSP_ST_F32) ((float *)dst)[i] = values[i];
    if (dtype == OSP_ST_F16) ((uint16_t *)dst)[i] = osp_f32_to_f16(values[i]);
    if (dtype == OSP_ST_BF16) ((uint16_t *)dst)[i] = osp_f32_to_bf16(values[i]);
    if (dtype == OSP_ST_I32) ((int32_t *)dst)[i] = (int32_t)values[i];
  }
}

static void path_in(const char *dir, const char *name, char *path, size_t size) {
  snprintf(path, size, "%s/%s/%s", temp_dir, dir, name);
}

static void make_dir(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", temp_dir, dir);
  CHECK(mkdir(path, 0700) == 0);
}

/* The shard's tensors (latents, context, context_lengths) as the spec says, written to dir. */
static void write_shard(const char *dir, const shard_spec *spec) {
  const sizes *s = &spec->size;
  const int64_t n = spec->count, channels = spec->channels ? spec->channels : 16;
  const int64_t context_n = spec->context_count ? spec->context_count : n;
  const int64_t per_latent = channels * s->frames * s->height * s->width;
  const int64_t per_context = s->tokens * s->text_dim;
  float *latents = calloc((size_t)(n * per_latent + 1), sizeof *latents);
  float *context = calloc((size_t)(context_n * per_context + 1), sizeof *context);
  float lengths[64];
  void *latent_bytes = calloc((size_t)(n * per_latent + 1), 8);
  void *context_bytes = calloc((size_t)(context_n * per_context + 1), 8);
  int64_t length_bytes[64];
  for (int64_t i = 0; i < n; i++) {
    const int64_t id = spec->first + i;
    for (int64_t e = 0; e < per_latent; e++) latents[i * per_latent + e] = latent_value(id, e);
    lengths[i] = (float)context_length(id, s->tokens);
    length_bytes[i] = context_length(id, s->tokens);
  }
  for (int64_t i = 0; i < context_n; i++)
    for (int64_t r = 0; r < s->tokens; r++)
      for (int64_t c = 0; c < s->text_dim; c++)
        context[(i * s->tokens + r) * s->text_dim + c] =
            expected_context(spec->first + i, r, c, s, spec->length_bits != 0);
  if (spec->bad_value != 0.0f) latents[(n - 1) * per_latent + 5] = spec->bad_value; /* NaN too */
  encode(spec->latents_dtype, latents, n * per_latent, latent_bytes);
  encode(spec->context_dtype, context, context_n * per_context, context_bytes);
  if (spec->length_bits == 32) encode(OSP_ST_I32, lengths, n, length_bytes);

  const int64_t latent_shape[] = {n, channels, s->frames, s->height, s->width};
  const int64_t context_shape[] = {context_n, s->tokens, s->text_dim};
  osp_st_write_entry entries[3] = {
      {"latents", spec->latents_dtype, 5, latent_shape, latent_bytes},
      {"context", spec->context_dtype, 3, context_shape, context_bytes},
      {"context_lengths", spec->length_bits == 32 ? OSP_ST_I32 : OSP_ST_I64, 1, &n, length_bytes},
  };
  int count = 1;
  if (!spec->no_context) entries[count++] = entries[1];
  if (spec->length_bits) entries[count++] = entries[2];
  char path[512];
  path_in(dir, spec->name, path, sizeof path);
  expect_status(osp_st_write(path, entries, count), OSP_OK, "");
  free(latents);
  free(context);
  free(latent_bytes);
  free(context_bytes);
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  path_in(dir, name, path, sizeof path);
  FILE *out = fopen(path, "w");
  CHECK(out != NULL);
  if (out) {
    fputs(text, out);
    fclose(out);
  }
}

/* Removes the temp dir: its subdirectories hold files only. */
static void remove_tree(const char *path) {
  struct dirent **items;
  const int count = scandir(path, &items, NULL, alphasort);
  for (int i = 0; i < count; i++) {
    const char *name = items[i]->d_name;
    char child[512];
    snprintf(child, sizeof child, "%s/%s", path, name);
    if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && unlink(child) != 0) remove_tree(child);
    free(items[i]);
  }
  if (count >= 0) free(items);
  rmdir(path);
}

/* ---- The good dataset --------------------------------------------------------------------- */

/* Three shards, written out of order, in three dtypes each; samples 0..2, 3..6 and 7..8. Beside
 * them a text file and a hidden file that are not shards. */
static const shard_spec GOOD[] = {
    {"shard_00.safetensors", 0, 3, OSP_ST_F32, OSP_ST_BF16, 64, {2, 3, 4, 5, 6}, 0, 0, false, 0},
    {"shard_01.safetensors", 3, 4, OSP_ST_F16, OSP_ST_F32, 0, {2, 3, 4, 5, 6}, 0, 0, false, 0},
    {"shard_02.safetensors", 7, 2, OSP_ST_BF16, OSP_ST_F16, 32, {2, 3, 4, 5, 6}, 0, 0, false, 0},
};
enum { GOOD_SAMPLES = 9, LATENT_FLOATS = 16 * 2 * 3 * 4, CONTEXT_FLOATS = 5 * 6 };

static void write_good_dataset(void) {
  make_dir("good");
  for (int i = 2; i >= 0; i--) write_shard("good", &GOOD[i]);
  write_file("good", "notes.txt", "not a shard");
  write_file("good", ".hidden.safetensors", "not a shard either");
}

static const shard_spec *good_shard_of(int64_t id) {
  int i = 0;
  while (i < 2 && id >= GOOD[i + 1].first) i++;
  return &GOOD[i];
}

/* Every sample of the batch holds the values its id was written with. */
static bool batch_matches_good(const osp_dataset_batch *batch) {
  const float *latents = batch->latents.data, *context = batch->context.data;
  const int32_t *lengths = batch->context_lengths.data;
  bool ok = true;
  for (int64_t b = 0; b < batch->latents.shape[0]; b++) {
    const int64_t id = batch->sample_ids[b];
    const bool has_lengths = good_shard_of(id)->length_bits != 0;
    for (int64_t e = 0; e < LATENT_FLOATS; e++)
      ok = ok && latents[b * LATENT_FLOATS + e] == latent_value(id, e);
    for (int64_t r = 0; r < SIZES.tokens; r++)
      for (int64_t c = 0; c < SIZES.text_dim; c++)
        ok = ok && context[(b * SIZES.tokens + r) * SIZES.text_dim + c] ==
                       expected_context(id, r, c, &SIZES, has_lengths);
    ok = ok && lengths[b] == (has_lengths ? context_length(id, SIZES.tokens) : SIZES.tokens);
  }
  return ok;
}

static osp_dataset_options options_of(int64_t batch, bool shuffle, uint64_t seed) {
  return (osp_dataset_options){.batch_size = batch, .seed = seed, .shuffle = shuffle,
                               .replica = 0, .replicas = 1};
}

static osp_dataset *open_good(const osp_dataset_options *options) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/good", temp_dir);
  osp_dataset *d = NULL;
  expect_status(osp_dataset_open(dir, options, &d), OSP_OK, "");
  return d;
}

static bool same_position(osp_dataset_position a, osp_dataset_position b) {
  return a.epoch == b.epoch && a.index == b.index;
}

/* Without shuffling: samples in name order, epoch after epoch, batches crossing the epochs. */
static void test_sequential(void) {
  const osp_dataset_options options = options_of(2, false, 0);
  osp_dataset *d = open_good(&options);
  if (!d) return;
  const osp_dataset_shape *shape = osp_dataset_shape_of(d);
  CHECK(shape->samples == GOOD_SAMPLES && shape->frames == 2 && shape->height == 3 &&
        shape->width == 4 && shape->context_tokens == 5 && shape->text_dim == 6);
  for (int64_t k = 0; k < 10; k++) {
    osp_dataset_batch batch;
    expect_status(osp_dataset_next(d, &batch), OSP_OK, "");
    const osp_dataset_position begin = {2 * k / GOOD_SAMPLES, 2 * k % GOOD_SAMPLES};
    const osp_dataset_position end = {(2 * k + 2) / GOOD_SAMPLES, (2 * k + 2) % GOOD_SAMPLES};
    CHECK(batch.sample_ids[0] == 2 * k % GOOD_SAMPLES);
    CHECK(batch.sample_ids[1] == (2 * k + 1) % GOOD_SAMPLES);
    CHECK(same_position(batch.position, begin) && same_position(osp_dataset_tell(d), end));
    CHECK(batch.latents.ndim == 5 && batch.latents.shape[0] == 2 && batch.latents.shape[1] == 16);
    CHECK(batch.context.ndim == 3 && batch.context.shape[1] == 5 && batch.context.shape[2] == 6);
    CHECK(batch.latents.dtype == OSP_F32 && batch.context_lengths.dtype == OSP_I32);
    CHECK(batch_matches_good(&batch));
  }
  CHECK(osp_dataset_stats_of(d).batches == 10);
  osp_dataset_close(d);
}

/* The ids of `batches` batches of B into ids (B·batches of them); every batch's content checked. */
static void read_ids(osp_dataset *d, int64_t batches, int64_t batch_size, int64_t *ids) {
  for (int64_t k = 0; k < batches; k++) {
    osp_dataset_batch batch;
    expect_status(osp_dataset_next(d, &batch), OSP_OK, "");
    memcpy(ids + k * batch_size, batch.sample_ids, (size_t)batch_size * sizeof *ids);
    CHECK(batch_matches_good(&batch));
  }
}

/* ids[0..n) is a permutation of 0..n−1. */
static bool is_permutation(const int64_t *ids, int64_t n) {
  bool seen[64] = {false};
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= n || seen[ids[i]]) return false;
    seen[ids[i]] = true;
  }
  return true;
}

static void test_shuffle(void) {
  enum { B = 3, EPOCHS = 3, BATCHES = EPOCHS * GOOD_SAMPLES / B };
  int64_t ids[BATCHES * B], again[BATCHES * B], other_seed[BATCHES * B];
  const osp_dataset_options options = options_of(B, true, 42);
  osp_dataset *d = open_good(&options);
  if (!d) return;
  read_ids(d, BATCHES, B, ids);
  osp_dataset_close(d);
  for (int e = 0; e < EPOCHS; e++) CHECK(is_permutation(ids + e * GOOD_SAMPLES, GOOD_SAMPLES));
  const size_t epoch_bytes = GOOD_SAMPLES * sizeof *ids;
  CHECK(memcmp(ids, ids + GOOD_SAMPLES, epoch_bytes) != 0);
  CHECK(memcmp(ids + GOOD_SAMPLES, ids + 2 * GOOD_SAMPLES, epoch_bytes) != 0);
  const int64_t in_order[GOOD_SAMPLES] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(memcmp(ids, in_order, epoch_bytes) != 0);

  d = open_good(&options); /* the same seed: the same order */
  if (!d) return;
  read_ids(d, BATCHES, B, again);
  osp_dataset_close(d);
  CHECK(memcmp(ids, again, sizeof ids) == 0);

  const osp_dataset_options other = options_of(B, true, 43);
  d = open_good(&other);
  if (!d) return;
  read_ids(d, BATCHES, B, other_seed);
  osp_dataset_close(d);
  CHECK(memcmp(ids, other_seed, sizeof ids) != 0);
}

/* ---- Saving and restoring the position ---------------------------------------------------- */

enum { RESUME_B = 4, RESUME_BATCHES = 6 };

typedef struct {
  int64_t ids[RESUME_BATCHES][RESUME_B];
  float latents[RESUME_BATCHES][RESUME_B * LATENT_FLOATS];
  float context[RESUME_BATCHES][RESUME_B * CONTEXT_FLOATS];
} recorded;

static void record_batches(osp_dataset *d, recorded *out) {
  for (int k = 0; k < RESUME_BATCHES; k++) {
    osp_dataset_batch batch;
    expect_status(osp_dataset_next(d, &batch), OSP_OK, "");
    memcpy(out->ids[k], batch.sample_ids, sizeof out->ids[k]);
    memcpy(out->latents[k], batch.latents.data, sizeof out->latents[k]);
    memcpy(out->context[k], batch.context.data, sizeof out->context[k]);
  }
}

/* B = 4 over 9 samples: the batches cross epochs. A seek, and a fresh open at the saved position,
 * give the same batches bit for bit. */
static void test_save_restore(void) {
  static recorded first, seeked, reopened, restarted;
  osp_dataset_options options = options_of(RESUME_B, true, 7);
  osp_dataset *d = open_good(&options);
  if (!d) return;
  recorded skipped;
  record_batches(d, &skipped); /* 24 samples: into epoch 2 */
  const osp_dataset_position saved = osp_dataset_tell(d);
  CHECK(same_position(saved, (osp_dataset_position){2, 6}));
  record_batches(d, &first);
  expect_status(osp_dataset_seek(d, saved), OSP_OK, "");
  CHECK(same_position(osp_dataset_tell(d), saved));
  record_batches(d, &seeked);
  CHECK(memcmp(&first, &seeked, sizeof first) == 0);

  expect_status(osp_dataset_seek(d, (osp_dataset_position){0, 0}), OSP_OK, ""); /* backwards */
  record_batches(d, &restarted);
  CHECK(memcmp(&skipped, &restarted, sizeof skipped) == 0);
  osp_dataset_close(d);

  options.start = saved;
  d = open_good(&options);
  if (!d) return;
  record_batches(d, &reopened);
  osp_dataset_close(d);
  CHECK(memcmp(&first, &reopened, sizeof first) == 0);
}

/* Replicas 0 and 1 of a global batch of 2·2 hold its halves, at the same positions. */
static void test_replicas(void) {
  osp_dataset_options options = options_of(4, true, 11);
  osp_dataset *global = open_good(&options);
  options.batch_size = 2;
  options.replicas = 2;
  osp_dataset *first = open_good(&options);
  options.replica = 1;
  osp_dataset *second = open_good(&options);
  if (!global || !first || !second) return;
  for (int k = 0; k < 7; k++) {
    osp_dataset_batch all, half0, half1;
    expect_status(osp_dataset_next(global, &all), OSP_OK, "");
    expect_status(osp_dataset_next(first, &half0), OSP_OK, "");
    expect_status(osp_dataset_next(second, &half1), OSP_OK, "");
    CHECK(memcmp(all.sample_ids, half0.sample_ids, 2 * sizeof(int64_t)) == 0);
    CHECK(memcmp(all.sample_ids + 2, half1.sample_ids, 2 * sizeof(int64_t)) == 0);
    CHECK(same_position(all.position, half0.position) &&
          same_position(all.position, half1.position));
    CHECK(batch_matches_good(&half1));
  }
  CHECK(same_position(osp_dataset_tell(global), osp_dataset_tell(second)));
  osp_dataset_close(global);
  osp_dataset_close(first);
  osp_dataset_close(second);
}

/* ---- The synthetic source and the prefetch thread ----------------------------------------- */

/* Sample id of the synthetic source as dataset.h defines it, compared with batch row b. */
static bool synthetic_row_matches(const osp_dataset_batch *batch, int64_t b,
                                  const osp_dataset_shape *shape, uint64_t seed, float *scratch) {
  const int64_t id = batch->sample_ids[b];
  const int64_t latent_floats = 16 * shape->frames * shape->height * shape->width;
  const int64_t context_floats = shape->context_tokens * shape->text_dim;
  const int64_t rows = 1 + id % shape->context_tokens;
  const float *latents = (const float *)batch->latents.data + b * latent_floats;
  const float *context = (const float *)batch->context.data + b * context_floats;
  osp_randn(seed, UINT32_C(1) << 31, (uint64_t)id << 40, scratch, (size_t)latent_floats);
  bool ok = memcmp(latents, scratch, (size_t)latent_floats * sizeof *scratch) == 0;
  osp_randn(seed, (UINT32_C(1) << 31) + 1, (uint64_t)id << 40, scratch,
            (size_t)(rows * shape->text_dim));
  ok = ok && memcmp(context, scratch, (size_t)(rows * shape->text_dim) * sizeof *scratch) == 0;
  for (int64_t i = rows * shape->text_dim; i < context_floats; i++) ok = ok && context[i] == 0.0f;
  return ok && ((const int32_t *)batch->context_lengths.data)[b] == rows;
}

static void sleep_milliseconds(long ms) {
  const struct timespec pause = {0, ms * 1000000L};
  nanosleep(&pause, NULL);
}

/* 2000 batches of 5 over 37 samples (270 epochs): every sample's content, every epoch a
 * permutation; and a trainer slower than the prefetch never waits. */
static void test_synthetic_prefetch(void) {
  enum { N = 37, B = 5, BATCHES = 2000 };
  const osp_dataset_shape shape = {.samples = N, .channels = 16, .frames = 1, .height = 2, .width = 3,
                                   .context_tokens = 4, .text_dim = 8};
  const osp_dataset_options options = options_of(B, true, 3);
  osp_dataset *d = NULL;
  expect_status(osp_dataset_open_synthetic(&shape, 77, &options, &d), OSP_OK, "");
  if (!d) return;
  static int64_t ids[BATCHES * B];
  float scratch[16 * 6];
  bool content = true;
  for (int k = 0; k < BATCHES; k++) {
    osp_dataset_batch batch;
    expect_status(osp_dataset_next(d, &batch), OSP_OK, "");
    for (int b = 0; b < B; b++)
      content = content && synthetic_row_matches(&batch, b, &shape, 77, scratch);
    memcpy(ids + k * B, batch.sample_ids, B * sizeof *ids);
  }
  CHECK(content);
  bool permutations = true;
  for (int e = 0; (e + 1) * N <= BATCHES * B; e++)
    permutations = permutations && is_permutation(ids + e * N, N);
  CHECK(permutations);
  CHECK(osp_dataset_stats_of(d).batches == BATCHES);

  const int64_t stalls = osp_dataset_stats_of(d).stalls;
  for (int k = 0; k < 5; k++) {
    sleep_milliseconds(50); /* the trainer's step: the next batch is read meanwhile */
    osp_dataset_batch batch;
    expect_status(osp_dataset_next(d, &batch), OSP_OK, "");
  }
  CHECK(osp_dataset_stats_of(d).stalls == stalls);
  osp_dataset_close(d);
}

/* A NaN in sample 2: the thread's failure comes out of next(), again on the next call, and a seek
 * past it clears it. */
static void test_failure_in_thread(void) {
  make_dir("nan");
  shard_spec spec = GOOD[0];
  spec.name = "nan.safetensors";
  spec.bad_value = NAN;
  write_shard("nan", &spec);
  char dir[512], message[1024];
  snprintf(dir, sizeof dir, "%s/nan", temp_dir);
  snprintf(message, sizeof message,
           "%s/nan.safetensors: tensor 'latents', sample 2: element 5 is NaN; expected finite "
           "values",
           dir);
  const osp_dataset_options options = options_of(2, false, 0);
  osp_dataset *d = NULL;
  expect_status(osp_dataset_open(dir, &options, &d), OSP_OK, "");
  if (!d) return;
  osp_dataset_batch batch;
  expect_status(osp_dataset_next(d, &batch), OSP_OK, ""); /* samples 0, 1 */
  expect_status(osp_dataset_next(d, &batch), OSP_ERR_NUMERIC, message);
  expect_status(osp_dataset_next(d, &batch), OSP_ERR_NUMERIC, message);
  expect_status(osp_dataset_seek(d, (osp_dataset_position){1, 0}), OSP_OK, "");
  expect_status(osp_dataset_next(d, &batch), OSP_OK, "");
  CHECK(batch.sample_ids[0] == 0 && batch.sample_ids[1] == 1);
  osp_dataset_close(d);
}

/* Closing at once (the thread mid-read) and closing nothing. */
static void test_close(void) {
  const osp_dataset_options options = options_of(3, true, 1);
  osp_dataset *d = open_good(&options);
  osp_dataset_close(d);
  osp_dataset_close(NULL);
  CHECK(true);
}

/* ---- Errors ------------------------------------------------------------------------------- */

/* Opening temp_dir/dir fails with `status` and the message (printf-style; each %s is the
 * directory's path). */
__attribute__((format(printf, 3, 4))) static void expect_open_error(const char *dir,
                                                                    osp_status status,
                                                                    const char *fmt, ...) {
  char path[512], message[2048];
  snprintf(path, sizeof path, "%s/%s", temp_dir, dir);
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  const osp_dataset_options options = options_of(2, true, 0);
  osp_dataset *d = (osp_dataset *)&d; /* set to NULL on failure */
  expect_status(osp_dataset_open(path, &options, &d), status, message);
  CHECK(d == NULL);
}

static void test_open_errors(void) {
  const char *t = temp_dir;
  make_dir("empty");
  write_file("empty", "readme.txt", "no shards here");
  expect_open_error("empty", OSP_ERR_MISSING, "dataset %s/empty: no shard files (*.safetensors)",
                    t);
  expect_open_error("absent", OSP_ERR_IO,
                    "dataset %s/absent: cannot read the directory: No such file or directory", t);

  /* A shard cut in half: the header's ranges run past the data. */
  make_dir("truncated");
  write_shard("truncated", &GOOD[0]);
  char path[512];
  path_in("truncated", GOOD[0].name, path, sizeof path);
  struct stat info;
  CHECK(stat(path, &info) == 0 && truncate(path, info.st_size / 2) == 0);
  osp_dataset *d = NULL;
  const osp_dataset_options options = options_of(2, true, 0);
  CHECK(osp_dataset_open(path, &options, &d) == OSP_ERR_IO); /* a file is not a directory */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/truncated", temp_dir);
  CHECK(osp_dataset_open(dir, &options, &d) == OSP_ERR_FORMAT && d == NULL);
  CHECK(strncmp(osp_last_error(), path, strlen(path)) == 0);
  CHECK(strstr(osp_last_error(), "end past the data section") != NULL);

  /* Two shards of different heights: the message names both files and both shapes. */
  make_dir("mismatch");
  write_shard("mismatch", &GOOD[0]);
  shard_spec taller = GOOD[1];
  taller.size.height = 4;
  write_shard("mismatch", &taller);
  expect_open_error("mismatch", OSP_ERR_SHAPE,
                    "%s/mismatch/shard_01.safetensors: latents [4, 16, 2, 4, 4] and context [4, 5, "
                    "6], but %s/mismatch/shard_00.safetensors: latents [3, 16, 2, 3, 4] and "
                    "context [3, 5, 6]; every shard needs the same F, H, W (latents [n, 16, F, H, "
                    "W]) and L, text_dim (context [n, L, text_dim])",
                    t, t);
}

/* A directory `dir` holding one shard a.safetensors, broken as its spec says, and the error
 * opening it gives (each %s of the message is temp_dir). */
typedef struct {
  const char *dir;
  shard_spec spec;
  osp_status status;
  const char *message;
} bad_shard;

static void test_bad_shards(void) {
  shard_spec a = GOOD[0];
  a.name = "a.safetensors";
  bad_shard cases[] = {
      {"no_context", a, OSP_ERR_MISSING,
       "%s/no_context/a.safetensors: tensor 'context' not found (the file has 2 tensors)"},
      {"n_mismatch", a, OSP_ERR_SHAPE,
       "%s/n_mismatch/a.safetensors: tensor 'context' holds 2 samples, 'latents' 3: expected the "
       "same n"},
      {"channels", a, OSP_ERR_SHAPE,
       "%s/channels/a.safetensors: tensor 'latents': expected shape [*, 16, *, *, *], found [3, "
       "8, 2, 3, 4]"},
      {"int_latents", a, OSP_ERR_SHAPE,
       "%s/int_latents/a.safetensors: tensor 'latents' is I32, expected a float dtype (F32, F16, "
       "BF16, F64, F8_E4M3 or F8_E5M2)"},
      {"no_frames", a, OSP_ERR_SHAPE,
       "%s/no_frames/a.safetensors: latents [3, 16, 0, 3, 4] and context [3, 5, 6]: expected F, "
       "H, W, L and text_dim >= 1"},
  };
  cases[0].spec.no_context = true;
  cases[1].spec.context_count = 2;
  cases[2].spec.channels = 8;
  cases[3].spec.latents_dtype = OSP_ST_I32;
  cases[4].spec.size.frames = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    make_dir(cases[i].dir);
    write_shard(cases[i].dir, &cases[i].spec);
    expect_open_error(cases[i].dir, cases[i].status, cases[i].message, temp_dir);
  }
}
/* context_lengths of the wrong dtype, and one longer than L. */
static void test_length_errors(void) {
  make_dir("float_lengths");
  char path[512];
  path_in("float_lengths", "a.safetensors", path, sizeof path);
  static float latents[2 * LATENT_FLOATS], context[2 * CONTEXT_FLOATS];
  const float float_lengths[2] = {1, 2};
  const int32_t long_lengths[2] = {5, 6};
  const int64_t latent_shape[] = {2, 16, 2, 3, 4}, context_shape[] = {2, 5, 6}, n = 2;
  osp_st_write_entry entries[3] = {
      {"latents", OSP_ST_F32, 5, latent_shape, latents},
      {"context", OSP_ST_F32, 3, context_shape, context},
      {"context_lengths", OSP_ST_F32, 1, &n, float_lengths},
  };
  expect_status(osp_st_write(path, entries, 3), OSP_OK, "");
  expect_open_error("float_lengths", OSP_ERR_SHAPE,
                    "%s/float_lengths/a.safetensors: tensor 'context_lengths' is F32, expected "
                    "I32 or I64",
                    temp_dir);

  make_dir("long_lengths");
  path_in("long_lengths", "a.safetensors", path, sizeof path);
  entries[2] = (osp_st_write_entry){"context_lengths", OSP_ST_I32, 1, &n, long_lengths};
  expect_status(osp_st_write(path, entries, 3), OSP_OK, "");
  expect_open_error("long_lengths", OSP_ERR_FORMAT,
                    "%s/long_lengths/a.safetensors: context_lengths[1] is 6, expected a value in "
                    "[0, L = 5]",
                    temp_dir);
}

static void test_option_errors(void) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/good", temp_dir);
  osp_dataset *d = NULL;
  osp_dataset_options options = options_of(0, true, 0);
  expect_status(osp_dataset_open(dir, &options, &d), OSP_ERR_ARGUMENT,
                "dataset options: batch_size: expected >= 1, found 0");
  options = options_of(2, true, 0);
  options.replica = 2;
  options.replicas = 2;
  expect_status(osp_dataset_open(dir, &options, &d), OSP_ERR_ARGUMENT,
                "dataset options: replica: expected 0 <= replica < replicas, found replica 2 of 2");
  options = options_of(1 << 20, true, 0);
  options.replicas = 32;
  expect_status(osp_dataset_open(dir, &options, &d), OSP_ERR_ARGUMENT,
                "dataset options: batch_size x replicas: expected at most 2^24, found 1048576 x "
                "32");
  options = options_of(2, true, 0);
  options.start.index = GOOD_SAMPLES;
  expect_status(osp_dataset_open(dir, &options, &d), OSP_ERR_ARGUMENT,
                "dataset options: start: index: expected a value in [0, N = 9), found 9");
  expect_status(osp_dataset_open(dir, NULL, &d), OSP_ERR_ARGUMENT,
                "dataset options: missing (NULL)");

  options = options_of(2, true, 0);
  d = open_good(&options);
  if (!d) return;
  expect_status(osp_dataset_seek(d, (osp_dataset_position){-1, 0}), OSP_ERR_ARGUMENT,
                "osp_dataset_seek: position: epoch: expected a value in [0, 2^32), found -1");
  expect_status(osp_dataset_next(d, NULL), OSP_ERR_ARGUMENT,
                "osp_dataset_next: batch: missing (NULL)");
  osp_dataset_close(d);

  osp_dataset_shape shape = {.samples = 0, .channels = 16, .frames = 1, .height = 1, .width = 1,
                             .context_tokens = 1, .text_dim = 1};
  expect_status(osp_dataset_open_synthetic(&shape, 1, &options, &d), OSP_ERR_ARGUMENT,
                "synthetic dataset: samples: expected a value in [1, 2^24], found 0");
  shape.samples = 4;
  shape.text_dim = 0;
  expect_status(osp_dataset_open_synthetic(&shape, 1, &options, &d), OSP_ERR_ARGUMENT,
                "synthetic dataset: expected channels, frames, height, width, context_tokens and "
                "text_dim >= 1 and fewer than 2^40 values a sample, found latents [16, 1, 1, 1] and "
                "context [1, 0]");
}

int main(void) {
  if (!mkdtemp(temp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  write_good_dataset();
  test_sequential();
  test_shuffle();
  test_save_restore();
  test_replicas();
  test_synthetic_prefetch();
  test_failure_in_thread();
  test_close();
  test_open_errors();
  test_bad_shards();
  test_length_errors();
  test_option_errors();
  remove_tree(temp_dir);
  return test_summary("test_dataset");
}
