/* The parts of the tokenizer (tokenizer.h), shared between its files: a growable byte string,
 * the normalizer and pre-tokenizer steps (tokenizer_steps.c), SentencePiece's precompiled
 * character map (precompiled.c) and the Unigram model (unigram.c). */
#ifndef OSP_TEXT_TOKENIZER_INTERNAL_H
#define OSP_TEXT_TOKENIZER_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osp.h"

/* ---- a growable byte string ---- */
typedef struct {
  char *data;
  size_t size, capacity;
} text_buffer;

osp_status text_append(text_buffer *b, const char *bytes, size_t n);
void text_free(text_buffer *b);

/* ---- SentencePiece's precompiled character map: a double-array trie of UTF-8 keys whose
 * values index NUL-terminated replacements ---- */
typedef struct {
  uint32_t *units;
  size_t unit_count;
  char *replacements;
  size_t replacement_bytes;
} precompiled_map;

osp_status precompiled_load(const char *label, const char *base64, precompiled_map *map);
/* Appends the normalization of `text` to out, grapheme cluster by grapheme cluster. */
osp_status precompiled_normalize(const precompiled_map *map, const char *text, size_t bytes, text_buffer *out);
void precompiled_free(precompiled_map *map);

/* ---- normalizer and pre-tokenizer steps ---- */
typedef enum { STEP_PRECOMPILED, STEP_STRIP, STEP_REPLACE_SPACES, STEP_REPLACE_STRING } normalizer_kind;

typedef struct {
  normalizer_kind kind;
  precompiled_map map;  /* precompiled */
  bool left, right;     /* strip */
  char *pattern;        /* replace a string; for spaces: a run of at least `min_run` spaces */
  int min_run;
  char *content;
} normalizer_step;

typedef enum { PRE_WHITESPACE_SPLIT, PRE_METASPACE } pre_tokenizer_kind;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } prepend_scheme;

typedef struct {
  pre_tokenizer_kind kind;
  char replacement[8]; /* metaspace: "▁" */
  prepend_scheme prepend;
  bool split;
} pre_tokenizer_step;

/* Reads the "normalizer" / "pre_tokenizer" value (null, one step or a Sequence) into steps. */
osp_status normalizer_read(const char *label, json_t *value, normalizer_step **steps, int *count);
osp_status pre_tokenizer_read(const char *label, json_t *value, pre_tokenizer_step **steps, int *count);
void normalizer_free(normalizer_step *steps, int count);

osp_status normalize(const normalizer_step *steps, int count, const char *text, size_t bytes, text_buffer *out);

/* A word the pre-tokenizer made: a span of its buffer, and whether it starts the whole text. */
typedef struct {
  size_t begin, end;
  bool at_start;
} word_span;

typedef struct {
  text_buffer text;
  word_span *words;
  int count, capacity;
} word_list;

/* Splits normalized text into words; `at_start`: whether the text begins the whole input. */
osp_status pre_tokenize(const pre_tokenizer_step *steps, int count, const char *text, size_t bytes, bool at_start,
                        word_list *out);
void word_list_free(word_list *list);

/* ---- the Unigram model ---- */
typedef struct {
  char **pieces;
  float *scores;
  int count;
  int unk_id; /* -1: none */
  bool byte_fallback;
  int byte_ids[256]; /* <0xNN>'s id, or -1 */
  float min_score;
  size_t longest;    /* bytes of the longest piece */
  int32_t *slots;    /* open-addressing hash of pieces → id (−1 empty) */
  size_t slot_count;
} unigram_model;

osp_status unigram_read(const char *label, json_t *model, unigram_model *out);
int unigram_find(const unigram_model *m, const char *bytes, size_t n);
/* Appends the ids of one word. */
osp_status unigram_encode(const unigram_model *m, const char *word, size_t bytes, int32_t **ids, int *count,
                          int *capacity);
void unigram_free(unigram_model *m);

osp_status ids_push(int32_t **ids, int *count, int *capacity, int32_t id);

/* Unicode White_Space, as Rust's char::is_whitespace. */
bool is_unicode_whitespace(uint32_t point);

#endif
