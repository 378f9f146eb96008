/* The Unigram model of a tokenizer.json (tokenizer_internal.h), as the Rust tokenizers library
 * encodes a word (Unigram::encode_optimized):
 *
 *   best[0] = 0; for each character start s, in order, and each piece p that the text at s
 *   begins with (shortest first): best[s + |p|] = max(best[s + |p|], best[s] + score(p)), a later
 *   candidate winning only when strictly better; if no piece is exactly the character at s, the
 *   character alone is a candidate of score min_score − 10 (unknown).
 *
 * Back from the end, the best path's pieces; consecutive unknown characters fuse into one piece.
 * A piece in the vocabulary gives its id; an unknown one its bytes' <0xNN> ids with byte fallback
 * (when the vocabulary has all of them), else the unknown id. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "text/tokenizer_internal.h"
#include "text/utf8.h"

static const float UNKNOWN_PENALTY = 10.0f;

osp_status ids_push(int32_t **ids, int *count, int *capacity, int32_t id) {
  if (*count == *capacity) {
    const int grown_capacity = *capacity ? 2 * *capacity : 32;
    int32_t *grown = realloc(*ids, (size_t)grown_capacity * sizeof *grown);
    if (!grown) return osp_fail(OSP_ERR_MEMORY, "tokenizer: out of memory");
    *ids = grown;
    *capacity = grown_capacity;
  }
  (*ids)[(*count)++] = id;
  return OSP_OK;
}

/* FNV-1a */
static uint64_t hash_bytes(const char *bytes, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)bytes[i]) * 1099511628211ull;
  return h;
}

int unigram_find(const unigram_model *m, const char *bytes, size_t n) {
  if (n > m->longest) return -1;
  for (size_t slot = hash_bytes(bytes, n) & (m->slot_count - 1);; slot = (slot + 1) & (m->slot_count - 1)) {
    const int32_t id = m->slots[slot];
    if (id < 0) return -1;
    if (strlen(m->pieces[id]) == n && !memcmp(m->pieces[id], bytes, n)) return id;
  }
}

/* Indexes the pieces by their bytes; a piece listed twice maps to its last id, as the Rust
 * library's map does. */
static osp_status index_pieces(const char *label, unigram_model *m) {
  m->slot_count = 1;
  while (m->slot_count < 2 * (size_t)m->count + 2) m->slot_count *= 2;
  m->slots = malloc(m->slot_count * sizeof *m->slots);
  if (!m->slots) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory for %d pieces", label, m->count);
  memset(m->slots, 0xFF, m->slot_count * sizeof *m->slots);
  for (int id = 0; id < m->count; id++) {
    const size_t n = strlen(m->pieces[id]);
    if (n > m->longest) m->longest = n;
    size_t slot = hash_bytes(m->pieces[id], n) & (m->slot_count - 1);
    while (m->slots[slot] >= 0 && strcmp(m->pieces[m->slots[slot]], m->pieces[id]))
      slot = (slot + 1) & (m->slot_count - 1);
    m->slots[slot] = id; /* a duplicate piece maps to its last id, as the Rust HashMap insert does */
  }
  return OSP_OK;
}

static osp_status read_pieces(const char *label, json_t *vocab, unigram_model *m) {
  m->count = (int)json_array_size(vocab);
  m->pieces = calloc((size_t)m->count + 1, sizeof *m->pieces);
  m->scores = calloc((size_t)m->count + 1, sizeof *m->scores);
  if (!m->pieces || !m->scores) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
  for (int id = 0; id < m->count; id++) {
    json_t *entry = json_array_get(vocab, (size_t)id);
    const char *piece = json_string_value(json_array_get(entry, 0));
    json_t *score = json_array_get(entry, 1);
    if (!piece || !json_is_number(score))
      return osp_fail(OSP_ERR_FORMAT, "%s: model.vocab[%d]: expected [\"piece\", score]", label, id);
    if (!(m->pieces[id] = strdup(piece))) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
    m->scores[id] = (float)json_number_value(score);
    if (id == 0 || m->scores[id] < m->min_score) m->min_score = m->scores[id];
  }
  return OSP_OK;
}

osp_status unigram_read(const char *label, json_t *model, unigram_model *m) {
  *m = (unigram_model){.unk_id = -1};
  const char *type = json_string_value(json_object_get(model, "type"));
  if (!type || strcmp(type, "Unigram"))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: model type \"%s\": OSP's tokenizer runs Unigram (SentencePiece) models",
                    label, type ? type : "?");
  json_t *vocab = json_object_get(model, "vocab"), *unk = json_object_get(model, "unk_id");
  if (!json_is_array(vocab) || json_array_size(vocab) == 0)
    return osp_fail(OSP_ERR_FORMAT, "%s: model.vocab: expected a list of [piece, score]", label);
  OSP_TRY(read_pieces(label, vocab, m));
  if (json_is_integer(unk)) m->unk_id = (int)json_integer_value(unk);
  if (m->unk_id >= m->count || (unk && !json_is_null(unk) && !json_is_integer(unk)) || m->unk_id < -1)
    return osp_fail(OSP_ERR_FORMAT, "%s: model.unk_id: expected an id below %d", label, m->count);
  m->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
  OSP_TRY(index_pieces(label, m));
  char name[8];
  for (int b = 0; b < 256; b++) {
    snprintf(name, sizeof name, "<0x%02X>", b);
    m->byte_ids[b] = unigram_find(m, name, strlen(name));
  }
  return OSP_OK;
}

void unigram_free(unigram_model *m) {
  for (int i = 0; m->pieces && i < m->count; i++) free(m->pieces[i]);
  free(m->pieces);
  free(m->scores);
  free(m->slots);
  *m = (unigram_model){0};
}

typedef struct {
  float score;
  int start; /* −1: not reached */
  int id;
} path_node;

/* Fills best[0..bytes]: the Viterbi pass. */
static osp_status best_paths(const unigram_model *m, const char *word, size_t bytes, path_node *best) {
  for (size_t i = 0; i <= bytes; i++) best[i] = (path_node){0.0f, -1, -1};
  best[0].start = 0;
  const float unknown_score = m->min_score - UNKNOWN_PENALTY;
  for (size_t s = 0; s < bytes;) {
    uint32_t point;
    const size_t character = (size_t)osp_utf8_next((const unsigned char *)word + s, bytes - s, &point);
    bool covered = false;
    for (size_t n = 1; n <= m->longest && s + n <= bytes; n++) {
      const int id = unigram_find(m, word + s, n);
      if (id < 0) continue;
      const float candidate = best[s].score + m->scores[id];
      path_node *target = &best[s + n];
      if (target->start < 0 || candidate > target->score) *target = (path_node){candidate, (int)s, id};
      covered |= n == character;
    }
    if (!covered) {
      const float candidate = best[s].score + unknown_score;
      path_node *target = &best[s + character];
      if (target->start < 0 || candidate > target->score) *target = (path_node){candidate, (int)s, m->unk_id};
    }
    s += character;
  }
  return OSP_OK;
}

/* The ids of one piece of the best path: its id, or for a fused unknown run its bytes or <unk>. */
static osp_status piece_ids(const unigram_model *m, const char *piece, size_t n, int32_t **ids, int *count,
                            int *capacity) {
  const int id = unigram_find(m, piece, n);
  if (id >= 0) return ids_push(ids, count, capacity, id);
  bool bytes_known = m->byte_fallback;
  for (size_t i = 0; bytes_known && i < n; i++) bytes_known = m->byte_ids[(unsigned char)piece[i]] >= 0;
  if (bytes_known) {
    for (size_t i = 0; i < n; i++) OSP_TRY(ids_push(ids, count, capacity, m->byte_ids[(unsigned char)piece[i]]));
    return OSP_OK;
  }
  if (m->unk_id < 0)
    return osp_fail(OSP_ERR_ARGUMENT, "tokenizer: the text has characters no piece covers, and the model has no "
                    "unknown token");
  return ids_push(ids, count, capacity, m->unk_id);
}

osp_status unigram_encode(const unigram_model *m, const char *word, size_t bytes, int32_t **ids, int *count,
                          int *capacity) {
  if (!bytes) return OSP_OK;
  path_node *best = malloc((bytes + 1) * sizeof *best);
  size_t *cuts = malloc((bytes + 1) * sizeof *cuts);
  osp_status status = best && cuts ? best_paths(m, word, bytes, best) : osp_fail(OSP_ERR_MEMORY, "tokenizer: out of memory");
  /* Walk back, collecting piece boundaries; a run of unknowns stays one piece. */
  int pieces = 0;
  for (size_t end = bytes; status == OSP_OK && end > 0;) {
    size_t start = (size_t)best[end].start;
    while (m->unk_id >= 0 && best[end].id == m->unk_id && start > 0 && best[start].id == m->unk_id)
      start = (size_t)best[start].start;
    cuts[pieces++] = end;
    end = start;
  }
  size_t start = 0;
  for (int p = pieces - 1; status == OSP_OK && p >= 0; p--) {
    status = piece_ids(m, word + start, cuts[p] - start, ids, count, capacity);
    start = cuts[p];
  }
  free(best);
  free(cuts);
  return status;
}
