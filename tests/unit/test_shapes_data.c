/* The world of shapes as training data (src/pipeline/shapes_data.h): sample id is the world's
 * sample id of the train split in pixel space with its caption's context; text_dropout 0 keeps
 * every caption and 1 drops every one (all-zero context); sizes the world cannot draw fail at open. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "harness.h"
#include "pipeline/shapes_data.h"
#include "pipeline/shapes_world.h"

static char vocab_path[] = "/tmp/osp_shapes_vocab_XXXXXX";

static void write_vocabulary(void) {
  const char *words[] = {"a", "small", "large", "red", "green", "blue", "yellow", "white", "purple", "black",
                         "gray", "circle", "square", "triangle", "moving", "left", "right", "up", "down",
                         "staying", "still", "bouncing", "growing", "shrinking", "on", "background"};
  FILE *f = fdopen(mkstemp(vocab_path), "w");
  for (size_t i = 0; f && i < sizeof words / sizeof words[0]; i++) fprintf(f, "%s\n", words[i]);
  if (f) fclose(f);
}

enum { B = 3, F = 4, S = 32, ROWS = 16, DIM = 8 };

/* The batch's sample b is the world's video of that id, in [−1, 1], and its caption's context. */
static void check_sample(const osp_shapes_data *data, const osp_dataset_batch *batch, int b, double dropout) {
  const int64_t id = batch->sample_ids[b];
  osp_shapes_attributes attributes;
  osp_shapes_sample(data->seed, (uint64_t)id, OSP_SHAPES_TRAIN, &attributes);
  CHECK(osp_shapes_split_of(&attributes) == OSP_SHAPES_TRAIN);
  osp_frames video;
  CHECK(osp_shapes_render(&attributes, data->seed, (uint64_t)id, F, S, S, &video) == OSP_OK);
  const float *x = (const float *)batch->latents.data + (int64_t)b * 3 * F * S * S;
  int exact = 1;
  for (int64_t i = 0; i < F * S * S; i++)
    for (int c = 0; c < 3; c++) exact &= x[c * F * S * S + i] == (float)video.rgb[i * 3 + c] / 127.5f - 1.0f;
  CHECK(exact);
  osp_frames_free(&video);
  char caption[OSP_SHAPES_CAPTION_MAX];
  CHECK(osp_shapes_caption(&attributes, caption, sizeof caption) == OSP_OK);
  float want[ROWS * DIM];
  osp_tensor expected = osp_tensor_make(want, OSP_F32, OSP_CPU, 2, (int64_t[]){ROWS, DIM});
  int64_t used = 0;
  CHECK(osp_word_encoder_encode(data->text, dropout == 1.0 ? "" : caption, &expected, &used) == OSP_OK);
  const float *context = (const float *)batch->context.data + b * ROWS * DIM;
  CHECK(!memcmp(context, want, sizeof want));
  CHECK(((const int32_t *)batch->context_lengths.data)[b] == used);
  CHECK(dropout == 1.0 ? used == 0 : used >= 9); /* the shortest caption has 9 words */
}

static void test_batches(double dropout) {
  osp_word_encoder text;
  CHECK(osp_word_encoder_load(vocab_path, DIM, ROWS, 5, &text) == OSP_OK);
  const osp_shapes_data data = {.seed = 9, .samples = 1000, .frames = F, .height = S, .width = S,
                                .text_dropout = dropout, .text = &text};
  const osp_dataset_options options = {.batch_size = B, .seed = 9, .shuffle = true, .replica = 0, .replicas = 1};
  osp_dataset *d = NULL;
  CHECK(osp_shapes_data_open(&data, &options, &d) == OSP_OK);
  for (int step = 0; d && step < 2; step++) {
    osp_dataset_batch batch;
    CHECK(osp_dataset_next(d, &batch) == OSP_OK);
    CHECK(batch.latents.shape[0] == B && batch.latents.shape[1] == 3 && batch.latents.shape[2] == F);
    for (int b = 0; b < B; b++) check_sample(&data, &batch, b, dropout);
  }
  osp_dataset_close(d);
  osp_word_encoder_free(&text);
}

static void test_bad_sizes(void) {
  osp_word_encoder text;
  CHECK(osp_word_encoder_load(vocab_path, DIM, ROWS, 5, &text) == OSP_OK);
  osp_shapes_data data = {.seed = 1, .samples = 10, .frames = F, .height = 16, .width = S, .text = &text};
  const osp_dataset_options options = {.batch_size = 1, .seed = 1, .replicas = 1};
  osp_dataset *d = NULL;
  CHECK(osp_shapes_data_open(&data, &options, &d) != OSP_OK && d == NULL); /* below the world's 32 pixels */
  data.height = S;
  data.text_dropout = 1.5;
  CHECK(osp_shapes_data_open(&data, &options, &d) == OSP_ERR_ARGUMENT && strstr(osp_last_error(), "text_dropout"));
  osp_word_encoder_free(&text);
}

int main(void) {
  write_vocabulary();
  test_batches(0.0);
  test_batches(1.0);
  test_bad_sizes();
  remove(vocab_path);
  return test_summary("shapes data");
}
