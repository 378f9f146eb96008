/* A frozen word-embedding text encoder, for models whose prompts come from a closed vocabulary
 * (the built-in shapes model). It has nothing to train and nothing to download:
 *
 *   tokens:  the prompt lower-cased (ASCII letters) and split at every byte that is not a letter
 *            or a digit; each piece is a word of the vocabulary or unknown (a warning names it);
 *   context: row i = word[token_i] + position[i] for the first `rows` tokens, then zero rows (the
 *            padding Wan2.1 gives its context), where word[·] and position[·] are fixed
 *            N(0, 1) vectors drawn from Philox (seed; streams "WORD" and "POSN") and
 *            unknown words share one vector of their own.
 *
 * The position term matters: a caption says "a red circle ... on a blue background", and only
 * where a colour stands tells the object's from the background's. An empty prompt gives all-zero
 * rows: the unconditional context of classifier-free guidance. */
#ifndef OSP_MODEL_WORD_ENCODER_H
#define OSP_MODEL_WORD_ENCODER_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct {
  char **words;      /* the vocabulary, in file order; token id = index + 1 (0: unknown) */
  int count;
  int64_t dim, rows; /* the context's columns and rows */
  float *table;      /* [count + 1, dim]: row 0 the unknown word's vector */
  float *positions;  /* [rows, dim] */
} osp_word_encoder;

/* Reads the vocabulary (one word a line: lower-case letters and digits; blank lines and lines
 * starting with '#' skipped; a duplicate or a malformed word is an error naming the line) and
 * draws the tables. dim, rows ≥ 1. */
osp_status osp_word_encoder_load(const char *vocab_path, int64_t dim, int64_t rows, uint64_t seed,
                                 osp_word_encoder *out);

/* The context of a prompt: `context` f32 CPU [rows, dim] (or [1, rows, dim]); *used (may be NULL)
 * gets the number of token rows before the padding. Unknown words and words past `rows` are
 * warned about (each prompt's once), never an error; any bytes are accepted. */
osp_status osp_word_encoder_encode(const osp_word_encoder *encoder, const char *prompt,
                                   osp_tensor *context, int64_t *used);

void osp_word_encoder_free(osp_word_encoder *encoder);

#endif
