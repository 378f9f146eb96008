#include "pipeline/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/status.h"

static const uint32_t SHUFFLE_TAG = 0x53485546u; /* "SHUF": w3 of the shuffle's counters */
static const int64_t EPOCH_LIMIT = INT64_C(1) << 32;        /* the epoch is w2, 32 bits */
static const int64_t GLOBAL_BATCH_LIMIT = INT64_C(1) << 24; /* flow_matching.h's sample limit */
static const int64_t SAMPLE_FLOATS_LIMIT = INT64_C(1) << 40;
static const uint32_t SYNTHETIC_LATENT_STREAM = UINT32_C(1) << 31;
static const uint32_t SYNTHETIC_CONTEXT_STREAM = (UINT32_C(1) << 31) + 1;
enum { SAMPLE_OFFSET_BITS = 40, MESSAGE_BYTES = 2048, PATH_BYTES = 4096, SLOTS = 2 };
static const char SHARD_SUFFIX[] = ".safetensors";

/* One shard file: its samples are first .. first + count − 1 of the dataset. */
typedef struct {
  osp_st_file file;
  int64_t first, count;
  const osp_st_entry *latents, *context, *lengths; /* lengths: NULL where the file has none */
} shard;

/* A batch buffer. EMPTY → FILLING (the thread reads into it) → READY → HELD (the trainer's batch)
 * → EMPTY. Only the thread touches a FILLING slot's data, only the trainer a HELD one's. */
typedef enum { SLOT_EMPTY, SLOT_FILLING, SLOT_READY, SLOT_HELD } slot_state;

typedef struct {
  slot_state state;
  float *latents, *context;
  int32_t *lengths;
  int64_t *ids;
  osp_dataset_position begin, end; /* the global batch's position, and the next one's */
  osp_status status;               /* of the read; its message below */
  char message[MESSAGE_BYTES];
} batch_slot;

struct osp_dataset {
  osp_dataset_shape shape;
  osp_dataset_options options;
  int64_t latent_floats, context_floats; /* per sample */

  /* The source: shards, the synthetic content's seed, or a maker and its argument. */
  shard *shards;
  int shard_count;
  uint64_t content_seed;
  osp_dataset_maker make;
  const void *make_user;
  osp_status (*read_sample)(const osp_dataset *d, int64_t id, float *latents, float *context,
                            int32_t *length);

  /* The order of epoch order_epoch (−1: none yet): the prefetch thread's alone. */
  int64_t *order;
  int64_t order_epoch;

  /* Shared with the prefetch thread, under `lock`. */
  batch_slot slots[SLOTS];
  pthread_mutex_t lock;
  pthread_cond_t changed;
  pthread_t thread;
  bool sync_ready, thread_running, stop, failed;
  uint64_t generation; /* bumped by a seek: a read begun before it is dropped */
  int fill_slot;       /* the slot the thread fills next, at fill_position */
  osp_dataset_position fill_position;

  /* The trainer's side. */
  int use_slot, held_slot; /* the slot next() hands out next; the one it holds (−1: none) */
  osp_dataset_position next_position;
  osp_dataset_stats stats;
};

/* ---- Checks ------------------------------------------------------------------------------- */

static osp_status check_options(const osp_dataset_options *o) {
  if (!o) return osp_fail(OSP_ERR_ARGUMENT, "dataset options: missing (NULL)");
  if (o->batch_size < 1)
    return osp_fail(OSP_ERR_ARGUMENT, "dataset options: batch_size: expected >= 1, found %lld",
                    (long long)o->batch_size);
  if (o->replicas < 1 || o->replica < 0 || o->replica >= o->replicas)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "dataset options: replica: expected 0 <= replica < replicas, found replica "
                    "%lld of %lld",
                    (long long)o->replica, (long long)o->replicas);
  if (o->batch_size > GLOBAL_BATCH_LIMIT / o->replicas)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "dataset options: batch_size x replicas: expected at most 2^24, found %lld x "
                    "%lld",
                    (long long)o->batch_size, (long long)o->replicas);
  return OSP_OK;
}

static osp_status check_position(const osp_dataset *d, const char *what, osp_dataset_position p) {
  if (p.epoch < 0 || p.epoch >= EPOCH_LIMIT)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: epoch: expected a value in [0, 2^32), found %lld", what,
                    (long long)p.epoch);
  if (p.index < 0 || p.index >= d->shape.samples)
    return osp_fail(OSP_ERR_ARGUMENT, "%s: index: expected a value in [0, N = %lld), found %lld",
                    what, (long long)d->shape.samples, (long long)p.index);
  return OSP_OK;
}

/* Π sizes[i] < limit, each size ≥ 1 (without overflowing). */
static bool product_below(const int64_t *sizes, int count, int64_t limit) {
  int64_t product = 1;
  for (int i = 0; i < count; i++) {
    if (sizes[i] < 1 || product > (limit - 1) / sizes[i]) return false;
    product *= sizes[i];
  }
  return true;
}

/* ---- Order -------------------------------------------------------------------------------- */

/* r of swap i in epoch e's shuffle: w1·2^32 + w0 of the block {i low, i high, e, "SHUF"}. */
static uint64_t shuffle_bits(uint64_t seed, int64_t epoch, int64_t i) {
  const osp_philox_ctr counter = {
      {(uint32_t)i, (uint32_t)((uint64_t)i >> 32), (uint32_t)epoch, SHUFFLE_TAG}};
  const osp_philox_key key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
  const osp_philox_ctr bits = osp_philox4x32_10(counter, key);
  return ((uint64_t)bits.v[1] << 32) | bits.v[0];
}

/* order ← epoch's permutation: Fisher–Yates from the top, swapping i with r mod (i + 1). */
static void make_order(osp_dataset *d, int64_t epoch) {
  const int64_t n = d->shape.samples;
  for (int64_t i = 0; i < n; i++) d->order[i] = i;
  for (int64_t i = n - 1; d->options.shuffle && i > 0; i--) {
    const int64_t j = (int64_t)(shuffle_bits(d->options.seed, epoch, i) % (uint64_t)(i + 1));
    const int64_t swapped = d->order[i];
    d->order[i] = d->order[j];
    d->order[j] = swapped;
  }
  d->order_epoch = epoch;
}

static int64_t sample_at(osp_dataset *d, osp_dataset_position p) {
  if (p.epoch != d->order_epoch) make_order(d, p.epoch);
  return d->order[p.index];
}

/* The position `count` samples further along the stream of epochs. */
static osp_dataset_position advance(osp_dataset_position p, int64_t count, int64_t samples) {
  const int64_t index = p.index + count;
  return (osp_dataset_position){p.epoch + index / samples, index % samples};
}

/* ---- Shards: checks at open ------------------------------------------------------------------ */

static bool is_float(osp_st_dtype dtype) {
  return dtype == OSP_ST_F32 || dtype == OSP_ST_F16 || dtype == OSP_ST_BF16 ||
         dtype == OSP_ST_F64 || dtype == OSP_ST_F8_E4M3 || dtype == OSP_ST_F8_E5M2;
}

static const char *entry_shape(const osp_st_entry *entry, char *buf, size_t size) {
  osp_tensor view = {.ndim = entry->ndim};
  memcpy(view.shape, entry->shape, sizeof view.shape);
  return osp_shape_string(&view, buf, size);
}

/* Tensor `name` of the file: present, `ndim` dimensions matching `shape` (−1: any), a float. */
static osp_status expect_float(const osp_st_file *file, const char *name, int ndim,
                               const int64_t *shape, const osp_st_entry **out) {
  OSP_TRY(osp_st_expect(file, name, ndim, shape, out));
  if (is_float((*out)->dtype)) return OSP_OK;
  return osp_fail(OSP_ERR_SHAPE,
                  "%s: tensor '%s' is %s, expected a float dtype (F32, F16, BF16, F64, F8_E4M3 or "
                  "F8_E5M2)",
                  file->path, name, osp_st_dtype_name((*out)->dtype));
}

/* The entry holds as many samples (its first size) as latents. */
static osp_status expect_samples(const shard *s, const osp_st_entry *entry) {
  if (entry->shape[0] == s->count) return OSP_OK;
  return osp_fail(OSP_ERR_SHAPE,
                  "%s: tensor '%s' holds %lld samples, 'latents' %lld: expected the same n",
                  s->file.path, entry->name, (long long)entry->shape[0], (long long)s->count);
}

/* F, H, W (latents), L and text_dim (context) are ≥ 1. */
static osp_status expect_sizes(const shard *s) {
  const int64_t sizes[] = {s->latents->shape[2], s->latents->shape[3], s->latents->shape[4],
                           s->context->shape[1], s->context->shape[2]};
  if (product_below(sizes, 5, INT64_MAX)) return OSP_OK;
  char latents[160], context[160];
  return osp_fail(OSP_ERR_SHAPE,
                  "%s: latents %s and context %s: expected F, H, W, L and text_dim >= 1",
                  s->file.path, entry_shape(s->latents, latents, sizeof latents),
                  entry_shape(s->context, context, sizeof context));
}

/* Value `row` of a checked context_lengths (I32 or I64, little-endian like the host). */
static int64_t length_at(const osp_st_entry *lengths, int64_t row) {
  if (lengths->dtype == OSP_ST_I32) {
    int32_t value;
    memcpy(&value, lengths->data + row * (int64_t)sizeof value, sizeof value);
    return value;
  }
  int64_t value;
  memcpy(&value, lengths->data + row * (int64_t)sizeof value, sizeof value);
  return value;
}

/* The optional context_lengths: I32 or I64 [n], each value in [0, L]. */
static osp_status find_lengths(shard *s) {
  if (!osp_st_find(&s->file, "context_lengths")) return OSP_OK;
  const osp_st_entry *lengths;
  OSP_TRY(osp_st_expect(&s->file, "context_lengths", 1, (const int64_t[]){-1}, &lengths));
  if (lengths->dtype != OSP_ST_I32 && lengths->dtype != OSP_ST_I64)
    return osp_fail(OSP_ERR_SHAPE, "%s: tensor 'context_lengths' is %s, expected I32 or I64",
                    s->file.path, osp_st_dtype_name(lengths->dtype));
  OSP_TRY(expect_samples(s, lengths));
  const int64_t tokens = s->context->shape[1];
  for (int64_t row = 0; row < s->count; row++) {
    const int64_t length = length_at(lengths, row);
    if (length < 0 || length > tokens)
      return osp_fail(OSP_ERR_FORMAT,
                      "%s: context_lengths[%lld] is %lld, expected a value in [0, L = %lld]",
                      s->file.path, (long long)row, (long long)length, (long long)tokens);
  }
  s->lengths = lengths;
  return OSP_OK;
}

/* latents [n, 16, F, H, W] and context [n, L, text_dim], floats, F..text_dim ≥ 1; the optional
 * context_lengths. */
static osp_status find_tensors(shard *s) {
  const int64_t latent_shape[] = {-1, OSP_DATASET_LATENT_CHANNELS, -1, -1, -1};
  OSP_TRY(expect_float(&s->file, "latents", 5, latent_shape, &s->latents));
  s->count = s->latents->shape[0];
  OSP_TRY(expect_float(&s->file, "context", 3, (const int64_t[]){-1, -1, -1}, &s->context));
  OSP_TRY(expect_samples(s, s->context));
  OSP_TRY(expect_sizes(s));
  return find_lengths(s);
}

/* The shard has the first shard's F, H, W, L and text_dim. */
static osp_status expect_first_sizes(const shard *s, const shard *first) {
  const bool same =
      memcmp(s->latents->shape + 1, first->latents->shape + 1, 4 * sizeof(int64_t)) == 0 &&
      memcmp(s->context->shape + 1, first->context->shape + 1, 2 * sizeof(int64_t)) == 0;
  if (same) return OSP_OK;
  char latents[160], context[160], first_latents[160], first_context[160];
  return osp_fail(OSP_ERR_SHAPE,
                  "%s: latents %s and context %s, but %s: latents %s and context %s; every shard "
                  "needs the same F, H, W (latents [n, 16, F, H, W]) and L, text_dim (context "
                  "[n, L, text_dim])",
                  s->file.path, entry_shape(s->latents, latents, sizeof latents),
                  entry_shape(s->context, context, sizeof context), first->file.path,
                  entry_shape(first->latents, first_latents, sizeof first_latents),
                  entry_shape(first->context, first_context, sizeof first_context));
}

/* A shard's name: <name>.safetensors, not hidden. */
static int is_shard_name(const struct dirent *entry) {
  const size_t length = strlen(entry->d_name), suffix = sizeof SHARD_SUFFIX - 1;
  return entry->d_name[0] != '.' && length > suffix &&
         strcmp(entry->d_name + length - suffix, SHARD_SUFFIX) == 0;
}

/* Byte-wise name order, whatever the locale. */
static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

/* Opens and checks shard `index` of the dataset (dir/name), its samples numbered from `first`. */
static osp_status open_shard(osp_dataset *d, const char *dir, const char *name, int64_t first) {
  char path[PATH_BYTES];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
    return osp_fail(OSP_ERR_IO, "dataset %s: the path of shard '%s' is too long", dir, name);
  shard *s = &d->shards[d->shard_count];
  OSP_TRY(osp_st_open(path, &s->file));
  d->shard_count++; /* open: closed with the dataset from here on */
  s->first = first;
  OSP_TRY(find_tensors(s));
  return d->shard_count > 1 ? expect_first_sizes(s, &d->shards[0]) : OSP_OK;
}

static osp_status open_shards(osp_dataset *d, const char *dir, struct dirent **names, int count) {
  d->shards = calloc((size_t)count, sizeof *d->shards);
  if (!d->shards)
    return osp_fail(OSP_ERR_MEMORY, "dataset %s: out of memory for %d shards", dir, count);
  int64_t samples = 0;
  for (int i = 0; i < count; i++) {
    OSP_TRY(open_shard(d, dir, names[i]->d_name, samples));
    samples += d->shards[i].count;
  }
  if (samples == 0)
    return osp_fail(OSP_ERR_FORMAT, "dataset %s: the shards hold no samples (n = 0 in each)", dir);
  const shard *first = &d->shards[0];
  d->shape = (osp_dataset_shape){.samples = samples, .channels = OSP_DATASET_LATENT_CHANNELS,
                                 .frames = first->latents->shape[2],
                                 .height = first->latents->shape[3],
                                 .width = first->latents->shape[4],
                                 .context_tokens = first->context->shape[1],
                                 .text_dim = first->context->shape[2]};
  return OSP_OK;
}

/* The shard files of `dir` in name order, opened and checked. */
static osp_status scan_shards(osp_dataset *d, const char *dir) {
  if (!dir) return osp_fail(OSP_ERR_ARGUMENT, "dataset: directory: missing (NULL)");
  struct dirent **names = NULL;
  const int count = scandir(dir, &names, is_shard_name, by_name);
  if (count < 0)
    return osp_fail(OSP_ERR_IO, "dataset %s: cannot read the directory: %s", dir, strerror(errno));
  const osp_status status =
      count == 0 ? osp_fail(OSP_ERR_MISSING, "dataset %s: no shard files (*.safetensors)", dir)
                 : open_shards(d, dir, names, count);
  for (int i = 0; i < count; i++) free(names[i]);
  free(names);
  return status;
}

/* ---- Reading samples ---------------------------------------------------------------------- */

/* The shard holding sample id: the last whose first ≤ id (an empty shard shares its first with
 * the next one). */
static const shard *shard_of(const osp_dataset *d, int64_t id) {
  int low = 0, high = d->shard_count - 1;
  while (low < high) {
    const int middle = (low + high + 1) / 2;
    if (d->shards[middle].first <= id)
      low = middle;
    else
      high = middle - 1;
  }
  return &d->shards[low];
}

/* Row `row` of an entry [n, ...], converted to float32. */
static void copy_row(const osp_st_entry *entry, int64_t row, float *dst) {
  osp_st_entry view = *entry;
  const int64_t row_values = osp_st_numel(entry) / entry->shape[0];
  view.shape[0] = 1;
  view.data = entry->data + (size_t)(row * row_values) * osp_st_dtype_size(entry->dtype);
  osp_st_to_f32(&view, dst);
}

static osp_status check_row_finite(const shard *s, const osp_st_entry *entry, int64_t row,
                                   float *values, int64_t count) {
  char what[PATH_BYTES + 64];
  snprintf(what, sizeof what, "%s: tensor '%s', sample %lld", s->file.path, entry->name,
           (long long)row);
  const osp_tensor t = osp_tensor_make(values, OSP_F32, OSP_CPU, 1, &count);
  return osp_check_finite(what, &t);
}

static osp_status read_shard_sample(const osp_dataset *d, int64_t id, float *latents,
                                    float *context, int32_t *length) {
  const shard *s = shard_of(d, id);
  const int64_t row = id - s->first;
  copy_row(s->latents, row, latents);
  copy_row(s->context, row, context);
  *length = (int32_t)(s->lengths ? length_at(s->lengths, row) : d->shape.context_tokens);
  OSP_TRY(check_row_finite(s, s->latents, row, latents, d->latent_floats));
  return check_row_finite(s, s->context, row, context, d->context_floats);
}

/* Sample id of the synthetic source (dataset.h): latents and the first 1 + (id mod L) context rows
 * from Philox, the other rows zero. */
static osp_status read_synthetic_sample(const osp_dataset *d, int64_t id, float *latents,
                                        float *context, int32_t *length) {
  const uint64_t offset = (uint64_t)id << SAMPLE_OFFSET_BITS;
  const int64_t rows = 1 + id % d->shape.context_tokens, filled = rows * d->shape.text_dim;
  osp_randn(d->content_seed, SYNTHETIC_LATENT_STREAM, offset, latents, (size_t)d->latent_floats);
  osp_randn(d->content_seed, SYNTHETIC_CONTEXT_STREAM, offset, context, (size_t)filled);
  memset(context + filled, 0, (size_t)(d->context_floats - filled) * sizeof *context);
  *length = (int32_t)rows;
  return OSP_OK;
}

/* ---- The prefetch thread ------------------------------------------------------------------ */

/* Reads the global batch at `begin`, this replica's B samples of it, into the slot. */
static osp_status read_batch(osp_dataset *d, batch_slot *slot, osp_dataset_position begin) {
  const int64_t batch = d->options.batch_size, samples = d->shape.samples;
  slot->begin = begin;
  slot->end = advance(begin, batch * d->options.replicas, samples);
  if (slot->end.epoch >= EPOCH_LIMIT)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "dataset: epoch %lld: past the 2^32 epochs the shuffle can key",
                    (long long)slot->end.epoch);
  for (int64_t b = 0; b < batch; b++) {
    const int64_t id = sample_at(d, advance(begin, d->options.replica * batch + b, samples));
    slot->ids[b] = id;
    OSP_TRY(d->read_sample(d, id, slot->latents + b * d->latent_floats,
                           slot->context + b * d->context_floats, &slot->lengths[b]));
  }
  return OSP_OK;
}

/* Fills the slots in turn while they are empty, until stopped; stops filling after a failure
 * (until a seek). A read that a seek overtook is dropped. */
static void *prefetch_main(void *arg) {
  osp_dataset *d = arg;
  pthread_mutex_lock(&d->lock);
  for (;;) {
    while (!d->stop && (d->failed || d->slots[d->fill_slot].state != SLOT_EMPTY))
      pthread_cond_wait(&d->changed, &d->lock);
    if (d->stop) break;
    const int k = d->fill_slot;
    const uint64_t generation = d->generation;
    const osp_dataset_position begin = d->fill_position;
    batch_slot *slot = &d->slots[k];
    slot->state = SLOT_FILLING;
    pthread_mutex_unlock(&d->lock);

    slot->status = read_batch(d, slot, begin);
    if (slot->status != OSP_OK)
      snprintf(slot->message, sizeof slot->message, "%s", osp_last_error());

    pthread_mutex_lock(&d->lock);
    if (generation != d->generation) {
      slot->state = SLOT_EMPTY;
      continue;
    }
    slot->state = SLOT_READY;
    d->failed = slot->status != OSP_OK;
    d->fill_position = slot->end;
    d->fill_slot = (k + 1) % SLOTS;
    pthread_cond_broadcast(&d->changed);
  }
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

/* ---- Opening and closing ------------------------------------------------------------------ */

/* count·each elements of `size` bytes, or NULL with *status an error naming `what`; nothing
 * (NULL) where *status already holds an error, so that a run of allocations fails at its first. */
static void *allocate(const char *what, int64_t count, int64_t each, size_t size,
                      osp_status *status) {
  if (*status != OSP_OK) return NULL;
  if ((uint64_t)count > SIZE_MAX / size / (uint64_t)each) {
    *status = osp_fail(OSP_ERR_MEMORY, "dataset: %s: %lld x %lld values do not fit in memory",
                       what, (long long)count, (long long)each);
    return NULL;
  }
  const size_t bytes = (size_t)count * (size_t)each * size;
  void *memory = malloc(bytes ? bytes : 1);
  if (!memory)
    *status = osp_fail(OSP_ERR_MEMORY, "dataset: %s: cannot allocate %zu bytes", what, bytes);
  return memory;
}

/* The order and the two batch buffers, sized for the shape and the options. */
static osp_status allocate_buffers(osp_dataset *d) {
  const int64_t batch = d->options.batch_size;
  osp_status status = OSP_OK;
  d->order = allocate("order", d->shape.samples, 1, sizeof *d->order, &status);
  for (int k = 0; k < SLOTS; k++) {
    batch_slot *slot = &d->slots[k];
    slot->latents = allocate("latents", batch, d->latent_floats, sizeof(float), &status);
    slot->context = allocate("context", batch, d->context_floats, sizeof(float), &status);
    slot->lengths = allocate("context lengths", batch, 1, sizeof(int32_t), &status);
    slot->ids = allocate("sample ids", batch, 1, sizeof(int64_t), &status);
  }
  return status;
}

static osp_status start_thread(osp_dataset *d) {
  if (pthread_mutex_init(&d->lock, NULL) != 0)
    return osp_fail(OSP_ERR_MEMORY, "dataset: cannot create the prefetch lock");
  if (pthread_cond_init(&d->changed, NULL) != 0) {
    pthread_mutex_destroy(&d->lock);
    return osp_fail(OSP_ERR_MEMORY, "dataset: cannot create the prefetch condition");
  }
  d->sync_ready = true;
  const int error = pthread_create(&d->thread, NULL, prefetch_main, d);
  if (error != 0)
    return osp_fail(OSP_ERR_MEMORY, "dataset: cannot start the prefetch thread: %s",
                    strerror(error));
  d->thread_running = true;
  return OSP_OK;
}

/* With the shape and the source set: the sizes, the start, the buffers, then the thread. */
static osp_status start(osp_dataset *d) {
  const osp_dataset_shape *s = &d->shape;
  d->latent_floats = s->channels * s->frames * s->height * s->width;
  d->context_floats = s->context_tokens * s->text_dim;
  OSP_TRY(check_position(d, "dataset options: start", d->options.start));
  OSP_TRY(allocate_buffers(d));
  d->order_epoch = -1;
  d->held_slot = -1;
  d->fill_position = d->next_position = d->options.start;
  return start_thread(d);
}

/* A new dataset (options checked) handed to `open_source`, then started; closed on failure. */
static osp_status create(const osp_dataset_options *options,
                         osp_status (*open_source)(osp_dataset *d, const void *arg),
                         const void *arg, osp_dataset **out) {
  if (!out) return osp_fail(OSP_ERR_ARGUMENT, "dataset: out: missing (NULL)");
  *out = NULL;
  OSP_TRY(check_options(options));
  osp_dataset *d = calloc(1, sizeof *d);
  if (!d) return osp_fail(OSP_ERR_MEMORY, "dataset: out of memory");
  d->options = *options;
  osp_status status = open_source(d, arg);
  if (status == OSP_OK) status = start(d);
  if (status != OSP_OK) {
    osp_dataset_close(d);
    return status;
  }
  *out = d;
  return OSP_OK;
}

static osp_status open_files(osp_dataset *d, const void *dir) {
  d->read_sample = read_shard_sample;
  return scan_shards(d, dir);
}

osp_status osp_dataset_open(const char *dir, const osp_dataset_options *options,
                            osp_dataset **out) {
  return create(options, open_files, dir, out);
}

/* A source without files: samples and sizes within bounds. */
static osp_status check_made_shape(const char *source, const osp_dataset_shape *s) {
  if (!s) return osp_fail(OSP_ERR_ARGUMENT, "%s dataset: shape: missing (NULL)", source);
  if (s->samples < 1 || s->samples > GLOBAL_BATCH_LIMIT)
    return osp_fail(OSP_ERR_ARGUMENT, "%s dataset: samples: expected a value in [1, 2^24], found %lld", source,
                    (long long)s->samples);
  const int64_t latents[] = {s->channels, s->frames, s->height, s->width};
  const int64_t context[] = {s->context_tokens, s->text_dim};
  if (!product_below(latents, 4, SAMPLE_FLOATS_LIMIT) || !product_below(context, 2, SAMPLE_FLOATS_LIMIT))
    return osp_fail(OSP_ERR_ARGUMENT,
                    "%s dataset: expected channels, frames, height, width, context_tokens and text_dim >= 1 "
                    "and fewer than 2^40 values a sample, found latents [%lld, %lld, %lld, %lld] and context "
                    "[%lld, %lld]",
                    source, (long long)s->channels, (long long)s->frames, (long long)s->height, (long long)s->width,
                    (long long)s->context_tokens, (long long)s->text_dim);
  return OSP_OK;
}

typedef struct {
  const osp_dataset_shape *shape;
  uint64_t content_seed;
} synthetic_spec;

static osp_status open_synthetic(osp_dataset *d, const void *arg) {
  const synthetic_spec *spec = arg;
  OSP_TRY(check_made_shape("synthetic", spec->shape));
  d->shape = *spec->shape;
  d->content_seed = spec->content_seed;
  d->read_sample = read_synthetic_sample;
  return OSP_OK;
}

osp_status osp_dataset_open_synthetic(const osp_dataset_shape *shape, uint64_t content_seed,
                                      const osp_dataset_options *options, osp_dataset **out) {
  const synthetic_spec spec = {shape, content_seed};
  return create(options, open_synthetic, &spec, out);
}

typedef struct {
  const osp_dataset_shape *shape;
  osp_dataset_maker make;
  const void *user;
} generated_spec;

static osp_status read_made_sample(const osp_dataset *d, int64_t id, float *latents, float *context,
                                   int32_t *length) {
  return d->make(d->make_user, id, latents, context, length);
}

static osp_status open_generated(osp_dataset *d, const void *arg) {
  const generated_spec *spec = arg;
  OSP_TRY(check_made_shape("generated", spec->shape));
  if (!spec->make) return osp_fail(OSP_ERR_ARGUMENT, "generated dataset: make: missing (NULL)");
  d->shape = *spec->shape;
  d->make = spec->make;
  d->make_user = spec->user;
  d->read_sample = read_made_sample;
  return OSP_OK;
}

osp_status osp_dataset_open_generated(const osp_dataset_shape *shape, osp_dataset_maker make, const void *user,
                                      const osp_dataset_options *options, osp_dataset **out) {
  const generated_spec spec = {shape, make, user};
  return create(options, open_generated, &spec, out);
}

void osp_dataset_close(osp_dataset *d) {
  if (!d) return;
  if (d->thread_running) {
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
  }
  if (d->sync_ready) {
    pthread_cond_destroy(&d->changed);
    pthread_mutex_destroy(&d->lock);
  }
  for (int i = 0; i < d->shard_count; i++) osp_st_close(&d->shards[i].file);
  free(d->shards);
  free(d->order);
  for (int k = 0; k < SLOTS; k++) {
    free(d->slots[k].latents);
    free(d->slots[k].context);
    free(d->slots[k].lengths);
    free(d->slots[k].ids);
  }
  free(d);
}

/* ---- The trainer's side ------------------------------------------------------------------- */

const osp_dataset_shape *osp_dataset_shape_of(const osp_dataset *d) { return &d->shape; }

osp_dataset_position osp_dataset_tell(const osp_dataset *d) { return d->next_position; }

osp_dataset_stats osp_dataset_stats_of(const osp_dataset *d) { return d->stats; }

/* The slot's buffers as the batch's tensors. */
static osp_dataset_batch batch_of(const osp_dataset *d, const batch_slot *slot) {
  const osp_dataset_shape *s = &d->shape;
  const int64_t batch = d->options.batch_size;
  const int64_t latents[] = {batch, s->channels, s->frames, s->height, s->width};
  const int64_t context[] = {batch, s->context_tokens, s->text_dim};
  return (osp_dataset_batch){
      .latents = osp_tensor_make(slot->latents, OSP_F32, OSP_CPU, 5, latents),
      .context = osp_tensor_make(slot->context, OSP_F32, OSP_CPU, 3, context),
      .context_lengths = osp_tensor_make(slot->lengths, OSP_I32, OSP_CPU, 1, &batch),
      .sample_ids = slot->ids,
      .position = slot->begin};
}

/* Under the lock: the slot the trainer held goes back to the thread. */
static void release_held(osp_dataset *d) {
  if (d->held_slot < 0) return;
  d->slots[d->held_slot].state = SLOT_EMPTY;
  d->held_slot = -1;
  pthread_cond_broadcast(&d->changed);
}

/* Under the lock: waits for the slot's read, counting a wait as a stall. */
static void wait_ready(osp_dataset *d, const batch_slot *slot) {
  if (slot->state == SLOT_READY) return;
  const double begin = osp_seconds();
  while (slot->state != SLOT_READY) pthread_cond_wait(&d->changed, &d->lock);
  d->stats.stalls++;
  d->stats.stall_seconds += osp_seconds() - begin;
}

osp_status osp_dataset_next(osp_dataset *d, osp_dataset_batch *batch) {
  if (!d || !batch)
    return osp_fail(OSP_ERR_ARGUMENT, "osp_dataset_next: %s: missing (NULL)",
                    d ? "batch" : "dataset");
  pthread_mutex_lock(&d->lock);
  release_held(d);
  batch_slot *slot = &d->slots[d->use_slot];
  wait_ready(d, slot);
  /* A failed read stays READY (the thread has stopped): every call reports it until a seek. */
  const osp_status status =
      slot->status == OSP_OK ? OSP_OK : osp_fail(slot->status, "%s", slot->message);
  if (status == OSP_OK) {
    slot->state = SLOT_HELD;
    d->held_slot = d->use_slot;
    d->use_slot = (d->use_slot + 1) % SLOTS;
    d->next_position = slot->end;
    d->stats.batches++;
    *batch = batch_of(d, slot);
  }
  pthread_mutex_unlock(&d->lock);
  return status;
}

osp_status osp_dataset_seek(osp_dataset *d, osp_dataset_position position) {
  if (!d) return osp_fail(OSP_ERR_ARGUMENT, "osp_dataset_seek: dataset: missing (NULL)");
  OSP_TRY(check_position(d, "osp_dataset_seek: position", position));
  pthread_mutex_lock(&d->lock);
  d->generation++;
  for (int k = 0; k < SLOTS; k++)
    if (d->slots[k].state != SLOT_FILLING) d->slots[k].state = SLOT_EMPTY;
  d->failed = false;
  d->fill_slot = d->use_slot = 0;
  d->held_slot = -1;
  d->fill_position = d->next_position = position;
  pthread_cond_broadcast(&d->changed);
  pthread_mutex_unlock(&d->lock);
  return OSP_OK;
}
