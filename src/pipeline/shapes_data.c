/* The world of shapes as training data (shapes_data.h). */
#include "pipeline/shapes_data.h"

#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "model/pixels.h"
#include "pipeline/shapes_world.h"

static const uint32_t dropout_tag = 0x44524F50u; /* "DROP" */

/* Whether sample id's caption is dropped: a uniform draw below text_dropout. */
static bool dropped(const osp_shapes_data *data, int64_t id) {
  const osp_philox_ctr counter = {{(uint32_t)id, (uint32_t)((uint64_t)id >> 32), dropout_tag, 0}};
  const osp_philox_key key = {{(uint32_t)data->seed, (uint32_t)(data->seed >> 32)}};
  return osp_uniform_from_bits(osp_philox4x32_10(counter, key).v[0]) <= data->text_dropout;
}

static osp_status make_sample(const void *user, int64_t id, float *latents, float *context, int32_t *rows) {
  const osp_shapes_data *data = user;
  osp_shapes_attributes attributes;
  osp_shapes_sample(data->seed, (uint64_t)id, OSP_SHAPES_TRAIN, &attributes);
  osp_frames video;
  OSP_TRY(osp_shapes_render(&attributes, data->seed, (uint64_t)id, data->frames, data->height, data->width, &video));
  osp_tensor x = osp_tensor_make(latents, OSP_F32, OSP_CPU, 4,
                                 (int64_t[]){3, data->frames, data->height, data->width});
  osp_status status = osp_pixels_to_latents(&video, &x);
  osp_frames_free(&video);
  char caption[OSP_SHAPES_CAPTION_MAX] = "";
  if (status == OSP_OK && !dropped(data, id)) status = osp_shapes_caption(&attributes, caption, sizeof caption);
  osp_tensor c = osp_tensor_make(context, OSP_F32, OSP_CPU, 2, (int64_t[]){data->text->rows, data->text->dim});
  int64_t used = 0;
  if (status == OSP_OK) status = osp_word_encoder_encode(data->text, caption, &c, &used);
  *rows = (int32_t)used;
  return status;
}

osp_status osp_shapes_data_open(const osp_shapes_data *data, const osp_dataset_options *options,
                                osp_dataset **out) {
  if (!(data->text_dropout >= 0 && data->text_dropout <= 1))
    return osp_fail(OSP_ERR_ARGUMENT, "shapes dataset: text_dropout: expected a number in [0, 1], found %g",
                    data->text_dropout);
  osp_frames first; /* sizes the world cannot draw fail here, not on the prefetch thread */
  osp_shapes_attributes attributes;
  osp_shapes_sample(data->seed, 0, OSP_SHAPES_TRAIN, &attributes);
  OSP_TRY(osp_shapes_render(&attributes, data->seed, 0, data->frames, data->height, data->width, &first));
  osp_frames_free(&first);
  const osp_dataset_shape shape = {.samples = data->samples, .channels = 3, .frames = data->frames,
                                   .height = data->height, .width = data->width,
                                   .context_tokens = data->text->rows, .text_dim = data->text->dim};
  return osp_dataset_open_generated(&shape, make_sample, data, options, out);
}
