/* Training data: a directory of safetensors shards of VAE latents and umT5 text embeddings (the
 * format: docs/dataset-format.md), a synthetic source of random values, or samples a generator
 * makes on demand (the built-in model's world of shapes), all read in shuffled batches.
 *
 * Order. The samples are numbered 0..N−1: the shards in byte-wise sorted name order, the rows of
 * each in order. Epoch e visits them in a permutation of its own, Fisher–Yates from the top:
 *   order = 0..N−1; for i = N−1 down to 1: swap order[i] and order[r mod (i + 1)],
 *   r = the 64 bits w1·2^32 + w0 of the Philox4x32-10 block (key = seed) with counter
 *   {i low, i high, e, 0x53485546 "SHUF"}
 * (the identity without shuffling). The epochs' orders follow one another as one stream of sample
 * ids, and a global batch is the next B·replicas ids of that stream, crossing into the next epoch
 * where one ends (no sample is dropped; with N < B·replicas a batch holds a sample twice).
 * Replica r (data parallelism) gets ids r·B .. r·B + B − 1 of each global batch. A position
 * (epoch, index) is where the next global batch begins; it is the same on every replica, and
 * seeking to a saved position gives the same batches, bit for bit, as the run that saved it.
 *
 * Prefetch. A background thread reads the next batch into the second of two buffers while the
 * trainer uses the first; osp_dataset_next waits only when that read has not finished. The buffers
 * are sized at open: nothing is allocated per batch. A failure in the thread (a NaN or Inf in a
 * sample: each sample is checked) is returned by the next call to osp_dataset_next, and again by
 * every later one until a seek. Not thread-safe: one trainer thread calls the functions below. */
#ifndef OSP_PIPELINE_DATASET_H
#define OSP_PIPELINE_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"

enum { OSP_DATASET_LATENT_CHANNELS = 16 }; /* the Wan-VAE's latent channels */

/* The sizes every sample of a dataset shares, and how many samples there are. */
typedef struct {
  int64_t samples;                /* N ≥ 1 */
  int64_t channels;               /* the latents' C: 16 in shards (the Wan-VAE's); any for the others */
  int64_t frames, height, width;  /* the latents' F, H, W */
  int64_t context_tokens;         /* L: the context's rows, zero-padded */
  int64_t text_dim;               /* the context's columns */
} osp_dataset_shape;

/* Where the next global batch begins: sample `index` of epoch `epoch`'s order. */
typedef struct {
  int64_t epoch; /* [0, 2^32) */
  int64_t index; /* [0, N) */
} osp_dataset_position;

typedef struct {
  int64_t batch_size;         /* B ≥ 1: samples per batch of this replica */
  uint64_t seed;              /* the shuffle's key */
  bool shuffle;               /* false: every epoch in sample order */
  int64_t replica, replicas;  /* 0 ≤ replica < replicas; B·replicas ≤ 2^24 */
  osp_dataset_position start; /* the first batch's position ({0, 0}: the beginning) */
} osp_dataset_options;

/* One batch, in the dataset's buffers: valid until the next call to osp_dataset_next,
 * osp_dataset_seek or osp_dataset_close. */
typedef struct {
  osp_tensor latents;             /* f32 CPU [B, C, F, H, W] */
  osp_tensor context;             /* f32 CPU [B, L, text_dim] */
  osp_tensor context_lengths;     /* i32 CPU [B]: each sample's rows before its zero padding (L
                                     where the shard has no context_lengths) */
  const int64_t *sample_ids;      /* [B]: the samples' numbers (see Order) */
  osp_dataset_position position;  /* where the global batch began */
} osp_dataset_batch;

/* How the prefetch kept up: batches handed out, and how many of them (and how long in all) the
 * trainer had to wait for. */
typedef struct {
  int64_t batches, stalls;
  double stall_seconds;
} osp_dataset_stats;

typedef struct osp_dataset osp_dataset;

/* Opens the shards (the files <dir>/<name>.safetensors, hidden ones skipped), checks every one
 * (tensors, dtypes, shapes, n, context lengths; the same F, H, W, L and text_dim in all) and starts
 * the prefetch thread. Each error names the file (both files where two disagree), the tensor, what
 * was expected and what was found. */
osp_status osp_dataset_open(const char *dir, const osp_dataset_options *options,
                            osp_dataset **out);

/* A source with no files: `shape` (shape->samples of them) and content fixed by content_seed.
 * Sample i: latents are osp_randn(content_seed, stream 2^31, offset i·2^40); its context has
 * 1 + (i mod L) rows from osp_randn(content_seed, stream 2^31 + 1, offset i·2^40), then zeros. */
osp_status osp_dataset_open_synthetic(const osp_dataset_shape *shape, uint64_t content_seed,
                                      const osp_dataset_options *options, osp_dataset **out);

/* A source whose sample `id` (0 ≤ id < shape->samples) is whatever `make` writes: latents
 * [C, F, H, W] and context [L, text_dim] of `shape`, and *rows, the context's rows before its
 * zero padding. `make` runs on the prefetch thread: it must be a function of id alone (and of
 * `user`, which it must not change), so that a position gives the same batches on every run. */
typedef osp_status (*osp_dataset_maker)(const void *user, int64_t id, float *latents, float *context,
                                        int32_t *rows);
osp_status osp_dataset_open_generated(const osp_dataset_shape *shape, osp_dataset_maker make,
                                      const void *user, const osp_dataset_options *options,
                                      osp_dataset **out);

const osp_dataset_shape *osp_dataset_shape_of(const osp_dataset *dataset);

/* The next batch (waiting for the prefetch if it has not finished); the thread starts on the one
 * after. On failure *batch is not set. */
osp_status osp_dataset_next(osp_dataset *dataset, osp_dataset_batch *batch);

/* The position of the batch the next osp_dataset_next returns: save it after a step, seek to it
 * (or open with it as options.start) to resume. */
osp_dataset_position osp_dataset_tell(const osp_dataset *dataset);

/* Continues from `position` (checked against N): the prefetched batches and the one in use are
 * dropped, and a failure of the prefetch is cleared. */
osp_status osp_dataset_seek(osp_dataset *dataset, osp_dataset_position position);

osp_dataset_stats osp_dataset_stats_of(const osp_dataset *dataset);

/* Stops and joins the prefetch thread, then frees everything (NULL: nothing to do). */
void osp_dataset_close(osp_dataset *dataset);

#endif
