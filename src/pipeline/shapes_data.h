/* The built-in model's training data: the world of shapes (shapes_world.h) as a generated dataset
 * source. Sample i is osp_shapes_sample(seed, i, train split) rendered at the configured size, in
 * pixel space (model/pixels.h: latents [3, F, H, W]), with its caption through the word encoder.
 * With probability `text_dropout` (Philox: key = seed, counter {i low, i high, "DROP", 0}) the
 * caption is dropped: the empty prompt's all-zero context, so that the model also learns the
 * unconditional velocity classifier-free guidance needs. */
#ifndef OSP_PIPELINE_SHAPES_DATA_H
#define OSP_PIPELINE_SHAPES_DATA_H

#include "model/word_encoder.h"
#include "pipeline/dataset.h"

typedef struct {
  uint64_t seed;
  int64_t samples;               /* the dataset's N (the world is endless: N fixes an epoch) */
  int64_t frames, height, width; /* of the videos */
  double text_dropout;           /* in [0, 1] */
  const osp_word_encoder *text;  /* the context's encoder (its rows and dim are the context's) */
} osp_shapes_data;

/* Opens the dataset of `data` (which must outlive it). */
osp_status osp_shapes_data_open(const osp_shapes_data *data, const osp_dataset_options *options,
                                osp_dataset **out);

#endif
