/* The frozen word-embedding text encoder (word_encoder.h). */
#include "model/word_encoder.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/status.h"

enum { WORD_BYTES = 64 }; /* the longest word kept whole; longer pieces are unknown all the same */

static const uint32_t word_stream = 0x574F5244u;     /* "WORD" */
static const uint32_t position_stream = 0x504F534Eu; /* "POSN" */

static bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Adds one vocabulary line's word, checking it. */
static osp_status add_word(osp_word_encoder *e, const char *path, int line, const char *text) {
  const size_t n = strlen(text);
  for (size_t i = 0; i < n; i++)
    if (!is_word_byte((unsigned char)text[i]) || (text[i] >= 'A' && text[i] <= 'Z'))
      return osp_fail(OSP_ERR_FORMAT, "%s: line %d: expected a word of lower-case letters and digits, found '%s'",
                      path, line, text);
  if (n >= WORD_BYTES)
    return osp_fail(OSP_ERR_FORMAT, "%s: line %d: a word of %zu bytes; at most %d", path, line, n, WORD_BYTES - 1);
  for (int k = 0; k < e->count; k++)
    if (!strcmp(e->words[k], text)) return osp_fail(OSP_ERR_FORMAT, "%s: line %d: '%s' appears twice", path, line, text);
  char **words = realloc(e->words, (size_t)(e->count + 1) * sizeof *words);
  if (!words) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  e->words = words;
  if (!(e->words[e->count] = strdup(text))) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  e->count++;
  return OSP_OK;
}

static osp_status read_vocabulary(const char *path, osp_word_encoder *e) {
  FILE *f = fopen(path, "r");
  if (!f) return osp_fail(OSP_ERR_IO, "%s: cannot open the vocabulary: %s", path, strerror(errno));
  char buffer[256];
  osp_status status = OSP_OK;
  for (int line = 1; status == OSP_OK && fgets(buffer, sizeof buffer, f); line++) {
    buffer[strcspn(buffer, "\r\n")] = '\0';
    if (buffer[0] && buffer[0] != '#') status = add_word(e, path, line, buffer);
  }
  fclose(f);
  if (status == OSP_OK && e->count == 0) status = osp_fail(OSP_ERR_FORMAT, "%s: the vocabulary has no word", path);
  return status;
}

osp_status osp_word_encoder_load(const char *vocab_path, int64_t dim, int64_t rows, uint64_t seed,
                                 osp_word_encoder *out) {
  *out = (osp_word_encoder){.dim = dim, .rows = rows};
  if (dim < 1 || rows < 1 || dim > (1 << 16) || rows > (1 << 16))
    return osp_fail(OSP_ERR_ARGUMENT, "word encoder: expected dim and rows in [1, 65536], found %lld and %lld",
                    (long long)dim, (long long)rows);
  osp_status status = read_vocabulary(vocab_path, out);
  if (status == OSP_OK) {
    out->table = malloc((size_t)(out->count + 1) * (size_t)dim * sizeof(float));
    out->positions = malloc((size_t)rows * (size_t)dim * sizeof(float));
    if (!out->table || !out->positions) status = osp_fail(OSP_ERR_MEMORY, "word encoder: out of memory");
  }
  if (status != OSP_OK) {
    osp_word_encoder_free(out);
    return status;
  }
  osp_randn(seed, word_stream, 0, out->table, (size_t)(out->count + 1) * (size_t)dim);
  osp_randn(seed, position_stream, 0, out->positions, (size_t)rows * (size_t)dim);
  return OSP_OK;
}

/* The token id of a piece (0: unknown). */
static int token_of(const osp_word_encoder *e, const char *piece) {
  for (int k = 0; k < e->count; k++)
    if (!strcmp(e->words[k], piece)) return k + 1;
  return 0;
}

/* The next piece of the prompt from *at, lower-cased into piece (cut at WORD_BYTES − 1, which no
 * word reaches, so a long piece stays unknown); false at the end. */
static bool next_piece(const char **at, char piece[WORD_BYTES]) {
  const unsigned char *p = (const unsigned char *)*at;
  while (*p && !is_word_byte(*p)) p++;
  if (!*p) return false;
  size_t n = 0;
  for (; is_word_byte(*p); p++)
    if (n < WORD_BYTES - 1) piece[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
  piece[n] = '\0';
  *at = (const char *)p;
  return true;
}

osp_status osp_word_encoder_encode(const osp_word_encoder *e, const char *prompt, osp_tensor *context,
                                   int64_t *used) {
  const int64_t shape2[2] = {e->rows, e->dim}, shape3[3] = {1, e->rows, e->dim};
  if (!prompt) return osp_fail(OSP_ERR_ARGUMENT, "word encoder: prompt: missing (NULL)");
  OSP_TRY(osp_check_f32_cpu("word encoder: context", context));
  if (osp_check_shape("word encoder: context", context, 2, shape2) != OSP_OK)
    OSP_TRY(osp_check_shape("word encoder: context", context, 3, shape3));
  float *out = context->data;
  memset(out, 0, (size_t)(e->rows * e->dim) * sizeof(float));
  char piece[WORD_BYTES], unknown[256] = "";
  int64_t tokens = 0, dropped = 0;
  for (const char *at = prompt; next_piece(&at, piece);) {
    if (tokens == e->rows) {
      dropped++;
      continue;
    }
    const int id = token_of(e, piece);
    if (id == 0 && strlen(unknown) + strlen(piece) + 4 < sizeof unknown)
      strcat(strcat(strcat(unknown, unknown[0] ? ", '" : "'"), piece), "'");
    const float *word = e->table + (size_t)id * (size_t)e->dim, *position = e->positions + tokens * e->dim;
    for (int64_t c = 0; c < e->dim; c++) out[tokens * e->dim + c] = word[c] + position[c];
    tokens++;
  }
  if (unknown[0]) osp_warn("prompt \"%s\": unknown words %s: this model does not know them", prompt, unknown);
  if (dropped) osp_warn("prompt \"%s\": %lld words past the model's %lld are ignored", prompt, (long long)dropped, (long long)e->rows);
  if (used) *used = tokens;
  return OSP_OK;
}

void osp_word_encoder_free(osp_word_encoder *e) {
  for (int k = 0; k < e->count; k++) free(e->words[k]);
  free(e->words);
  free(e->table);
  free(e->positions);
  *e = (osp_word_encoder){0};
}
