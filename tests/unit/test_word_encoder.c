/* The frozen word-embedding text encoder (src/model/word_encoder.h): the context rows are the word
 * and position vectors of the prompt's tokens, then zeros; case and punctuation do not matter;
 * unknown words share the unknown vector; any bytes are accepted; the vocabulary file is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"
#include "harness.h"
#include "model/word_encoder.h"

enum { DIM = 8, ROWS = 5 };

static char temp_dir[] = "/tmp/osp_word_encoder_XXXXXX";

static const char *write_vocabulary(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", temp_dir, name);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  return path;
}

/* The context of a prompt, and how many token rows it has. */
static int64_t encode(const osp_word_encoder *e, const char *prompt, float out[ROWS * DIM]) {
  osp_tensor context = osp_tensor_make(out, OSP_F32, OSP_CPU, 2, (int64_t[]){ROWS, DIM});
  int64_t used = -1;
  CHECK(osp_word_encoder_encode(e, prompt, &context, &used) == OSP_OK);
  return used;
}

/* Row r of the context is word `id`'s vector plus position r's. */
static int row_is(const osp_word_encoder *e, const float *context, int r, int id) {
  for (int c = 0; c < DIM; c++)
    if (context[r * DIM + c] != e->table[id * DIM + c] + e->positions[r * DIM + c]) return 0;
  return 1;
}

static int rows_zero_from(const float *context, int r) {
  for (int i = r * DIM; i < ROWS * DIM; i++)
    if (context[i] != 0.0f) return 0;
  return 1;
}

static void test_encoding(void) {
  osp_word_encoder e;
  CHECK(osp_word_encoder_load(write_vocabulary("v.txt", "# shapes\na\nred\n\ncircle\nblue\n"), DIM, ROWS, 7, &e) == OSP_OK);
  CHECK(e.count == 4);
  float context[ROWS * DIM], again[ROWS * DIM];
  CHECK(encode(&e, "a red circle", context) == 3);
  CHECK(row_is(&e, context, 0, 1) && row_is(&e, context, 1, 2) && row_is(&e, context, 2, 3));
  CHECK(rows_zero_from(context, 3));
  CHECK(encode(&e, "  A, RED... Circle!", again) == 3); /* case and punctuation */
  CHECK(!memcmp(context, again, sizeof context));
  CHECK(encode(&e, "a green circle", context) == 3);   /* an unknown word: row 0 of the table */
  CHECK(row_is(&e, context, 1, 0) && row_is(&e, context, 2, 3));
  CHECK(encode(&e, "", context) == 0 && rows_zero_from(context, 0));
  CHECK(encode(&e, "\xf0\x9f\x99\x82 red \xff\xfe", context) == 1 && row_is(&e, context, 0, 2)); /* emoji, bad UTF-8 */
  CHECK(encode(&e, "a red circle blue a red circle", context) == ROWS); /* cut at ROWS */
  CHECK(row_is(&e, context, 4, 1));
  /* The position term: the same word at two places gives two rows. */
  CHECK(encode(&e, "red red", context) == 2 && memcmp(context, context + DIM, DIM * sizeof(float)));
  osp_word_encoder same;
  CHECK(osp_word_encoder_load(write_vocabulary("v.txt", "a\nred\ncircle\nblue\n"), DIM, ROWS, 7, &same) == OSP_OK);
  CHECK(!memcmp(e.table, same.table, (size_t)(e.count + 1) * DIM * sizeof(float))); /* the seed fixes them */
  osp_word_encoder_free(&same);
  osp_tensor wrong = osp_tensor_make(context, OSP_F32, OSP_CPU, 2, (int64_t[]){ROWS, DIM + 1});
  CHECK(osp_word_encoder_encode(&e, "a", &wrong, NULL) == OSP_ERR_SHAPE);
  osp_word_encoder_free(&e);
}

static void expect_vocabulary_error(const char *text, const char *needle) {
  osp_word_encoder e;
  const osp_status status = osp_word_encoder_load(write_vocabulary("bad.txt", text), DIM, ROWS, 7, &e);
  CHECK(status == OSP_ERR_FORMAT && strstr(osp_last_error(), needle));
  if (status != OSP_ERR_FORMAT || !strstr(osp_last_error(), needle))
    fprintf(stderr, "  vocabulary \"%s\": %s\n", text, osp_last_error());
}

static void test_bad_vocabulary(void) {
  expect_vocabulary_error("a\nred\na\n", "line 3: 'a' appears twice");
  expect_vocabulary_error("a\nRed\n", "line 2: expected a word of lower-case letters and digits, found 'Red'");
  expect_vocabulary_error("a b\n", "line 1");
  expect_vocabulary_error("# nothing\n", "has no word");
  osp_word_encoder e;
  CHECK(osp_word_encoder_load("/nonexistent/vocab.txt", DIM, ROWS, 7, &e) == OSP_ERR_IO);
  CHECK(strstr(osp_last_error(), "/nonexistent/vocab.txt") != NULL);
  CHECK(osp_word_encoder_load(write_vocabulary("v.txt", "a\n"), 0, ROWS, 7, &e) == OSP_ERR_ARGUMENT);
}

int main(void) {
  if (!mkdtemp(temp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_encoding();
  test_bad_vocabulary();
  char command[300];
  snprintf(command, sizeof command, "rm -rf %s", temp_dir);
  if (system(command) != 0) fprintf(stderr, "could not remove %s\n", temp_dir);
  return test_summary("word encoder");
}
