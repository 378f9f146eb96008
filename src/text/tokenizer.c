/* The tokenizer (tokenizer.h): reading tokenizer.json, the added tokens, the template, and the
 * run from text to ids. The steps themselves: tokenizer_steps.c, precompiled.c, unigram.c. */
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "text/prompt_clean.h"
#include "text/tokenizer_internal.h"
#include "text/utf8.h"

typedef struct {
  char *content;
  int32_t id;
  bool lstrip, rstrip;
} added_token;

struct osp_tokenizer {
  char *path;
  added_token *added;
  int added_count;
  normalizer_step *normalizers;
  int normalizer_count;
  pre_tokenizer_step *pre_tokenizers;
  int pre_tokenizer_count;
  unigram_model model;
  int32_t *prefix, *suffix; /* the template's special ids before and after the text */
  int prefix_count, suffix_count;
  int32_t pad_id;
};

/* ---- reading ---- */

static osp_status resolve_path(const char *path, char *file, size_t size) {
  struct stat info;
  if (stat(path, &info) != 0) return osp_fail(OSP_ERR_MISSING, "%s: no such tokenizer file or folder", path);
  if (!S_ISDIR(info.st_mode)) {
    snprintf(file, size, "%s", path);
    return OSP_OK;
  }
  const char *const inside[] = {"tokenizer.json", "tokenizer/tokenizer.json"};
  for (int i = 0; i < 2; i++) {
    snprintf(file, size, "%s/%s", path, inside[i]);
    if (stat(file, &info) == 0 && S_ISREG(info.st_mode)) return OSP_OK;
  }
  return osp_fail(OSP_ERR_MISSING, "%s: no tokenizer.json (looked for %s/tokenizer.json and %s/tokenizer/tokenizer.json)",
                  path, path, path);
}

static osp_status read_added_tokens(const char *label, json_t *list, osp_tokenizer *t) {
  const size_t n = json_array_size(list);
  if (!n) return OSP_OK;
  if (!(t->added = calloc(n, sizeof *t->added))) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
  for (size_t i = 0; i < n; i++) {
    json_t *token = json_array_get(list, i);
    const char *content = json_string_value(json_object_get(token, "content"));
    json_t *id = json_object_get(token, "id");
    if (!content || !content[0] || !json_is_integer(id))
      return osp_fail(OSP_ERR_FORMAT, "%s: added_tokens[%zu]: expected an id and a content", label, i);
    if (json_is_true(json_object_get(token, "single_word")) || json_is_true(json_object_get(token, "normalized")))
      return osp_fail(OSP_ERR_UNSUPPORTED, "%s: added token \"%s\" is single_word or normalized: OSP's tokenizer "
                      "matches added tokens in the raw text only", label, content);
    added_token *a = &t->added[t->added_count++];
    a->content = strdup(content);
    a->id = (int32_t)json_integer_value(id);
    a->lstrip = json_is_true(json_object_get(token, "lstrip"));
    a->rstrip = json_is_true(json_object_get(token, "rstrip"));
    if (!a->content) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
    if (!strcmp(content, "<pad>")) t->pad_id = a->id;
  }
  return OSP_OK;
}

/* The ids of one template item: a special token's (from special_tokens) or NULL for "$A". */
static osp_status template_item(const char *label, json_t *item, json_t *specials, json_t **ids) {
  json_t *special = json_object_get(item, "SpecialToken");
  json_t *sequence = json_object_get(item, "Sequence");
  *ids = NULL;
  if (sequence) {
    const char *which = json_string_value(json_object_get(sequence, "id"));
    if (!which || strcmp(which, "A"))
      return osp_fail(OSP_ERR_FORMAT, "%s: post_processor: the single template's sequence must be A", label);
    return OSP_OK;
  }
  const char *name = json_string_value(json_object_get(special, "id"));
  *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
  if (!json_is_array(*ids))
    return osp_fail(OSP_ERR_FORMAT, "%s: post_processor: special token \"%s\" without its ids", label, name ? name : "?");
  return OSP_OK;
}

static osp_status append_ids(json_t *ids, int32_t **list, int *count) {
  int capacity = *count;
  for (size_t i = 0; i < json_array_size(ids); i++)
    OSP_TRY(ids_push(list, count, &capacity, (int32_t)json_integer_value(json_array_get(ids, i))));
  return OSP_OK;
}

static osp_status read_template(const char *label, json_t *post, osp_tokenizer *t) {
  if (!post || json_is_null(post)) return OSP_OK;
  const char *type = json_string_value(json_object_get(post, "type"));
  if (!type || strcmp(type, "TemplateProcessing"))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: post_processor \"%s\": OSP's tokenizer knows TemplateProcessing", label,
                    type ? type : "?");
  json_t *single = json_object_get(post, "single"), *specials = json_object_get(post, "special_tokens");
  bool after = false;
  for (size_t i = 0; i < json_array_size(single); i++) {
    json_t *ids;
    OSP_TRY(template_item(label, json_array_get(single, i), specials, &ids));
    if (!ids) after = true;
    else OSP_TRY(after ? append_ids(ids, &t->suffix, &t->suffix_count) : append_ids(ids, &t->prefix, &t->prefix_count));
  }
  return OSP_OK;
}

static osp_status read_tokenizer(const char *file, json_t *root, osp_tokenizer *t) {
  OSP_TRY(read_added_tokens(file, json_object_get(root, "added_tokens"), t));
  OSP_TRY(normalizer_read(file, json_object_get(root, "normalizer"), &t->normalizers, &t->normalizer_count));
  OSP_TRY(pre_tokenizer_read(file, json_object_get(root, "pre_tokenizer"), &t->pre_tokenizers, &t->pre_tokenizer_count));
  OSP_TRY(unigram_read(file, json_object_get(root, "model"), &t->model));
  return read_template(file, json_object_get(root, "post_processor"), t);
}

osp_status osp_tokenizer_load(const char *path, osp_tokenizer **out) {
  char file[4352];
  *out = NULL;
  OSP_TRY(resolve_path(path, file, sizeof file));
  json_error_t error;
  json_t *root = json_load_file(file, 0, &error);
  if (!root) return osp_fail(OSP_ERR_FORMAT, "%s: line %d: %s", file, error.line, error.text);
  osp_tokenizer *t = calloc(1, sizeof *t);
  osp_status status = t ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "%s: out of memory", file);
  if (status == OSP_OK && !(t->path = strdup(file))) status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory", file);
  if (status == OSP_OK) status = read_tokenizer(file, root, t);
  json_decref(root);
  if (status != OSP_OK) {
    osp_tokenizer_free(t);
    return status;
  }
  *out = t;
  return OSP_OK;
}

void osp_tokenizer_free(osp_tokenizer *t) {
  if (!t) return;
  for (int i = 0; i < t->added_count; i++) free(t->added[i].content);
  free(t->added);
  normalizer_free(t->normalizers, t->normalizer_count);
  free(t->pre_tokenizers);
  unigram_free(&t->model);
  free(t->prefix);
  free(t->suffix);
  free(t->path);
  free(t);
}

int32_t osp_tokenizer_pad_id(const osp_tokenizer *t) { return t->pad_id; }
int osp_tokenizer_vocab_size(const osp_tokenizer *t) { return t->model.count; }

/* ---- encoding ---- */

/* The longest added token at text[at] (−1: none). */
static int added_at(const osp_tokenizer *t, const char *text, size_t bytes, size_t at) {
  int best = -1;
  size_t best_length = 0;
  for (int i = 0; i < t->added_count; i++) {
    const size_t n = strlen(t->added[i].content);
    if (n > best_length && at + n <= bytes && !memcmp(text + at, t->added[i].content, n)) {
      best = i;
      best_length = n;
    }
  }
  return best;
}

/* The ids of a span of text between added tokens: normalized, split into words, each encoded. */
static osp_status encode_span(const osp_tokenizer *t, const char *text, size_t bytes, bool at_start, int32_t **ids,
                              int *count, int *capacity) {
  if (!bytes) return OSP_OK;
  text_buffer normalized = {0};
  word_list words = {0};
  osp_status status = normalize(t->normalizers, t->normalizer_count, text, bytes, &normalized);
  if (status == OSP_OK)
    status = pre_tokenize(t->pre_tokenizers, t->pre_tokenizer_count, normalized.data, normalized.size, at_start, &words);
  for (int w = 0; status == OSP_OK && w < words.count; w++)
    status = unigram_encode(&t->model, words.text.data + words.words[w].begin,
                            words.words[w].end - words.words[w].begin, ids, count, capacity);
  text_free(&normalized);
  word_list_free(&words);
  return status;
}

/* The whitespace bytes before `end` (down to `floor`) or after `at`. */
static size_t whitespace_before(const char *text, size_t floor, size_t end) {
  size_t begin = end;
  while (begin > floor) {
    size_t last = begin - 1;
    while (last > floor && ((unsigned char)text[last] & 0xC0) == 0x80) last--;
    uint32_t point;
    if (!osp_utf8_next((const unsigned char *)text + last, begin - last, &point) || !is_unicode_whitespace(point)) break;
    begin = last;
  }
  return end - begin;
}

static size_t whitespace_after(const char *text, size_t at, size_t bytes) {
  size_t end = at;
  uint32_t point;
  for (int n; end < bytes && (n = osp_utf8_next((const unsigned char *)text + end, bytes - end, &point)) &&
              is_unicode_whitespace(point);)
    end += (size_t)n;
  return end - at;
}

/* The ids of the text without the template: spans and added tokens in order. */
static osp_status encode_text(const osp_tokenizer *t, const char *text, size_t bytes, int32_t **ids, int *count) {
  int capacity = 0;
  size_t span = 0;
  osp_status status = OSP_OK;
  for (size_t at = 0; status == OSP_OK && at < bytes;) {
    const int a = added_at(t, text, bytes, at);
    if (a < 0) {
      at++;
      continue;
    }
    const added_token *token = &t->added[a];
    const size_t left = token->lstrip ? whitespace_before(text, span, at) : 0;
    const size_t end = at + strlen(token->content);
    const size_t right = token->rstrip ? whitespace_after(text, end, bytes) : 0;
    status = encode_span(t, text + span, at - left - span, span == 0, ids, count, &capacity);
    if (status == OSP_OK) status = ids_push(ids, count, &capacity, token->id);
    at = span = end + right;
  }
  if (status == OSP_OK) status = encode_span(t, text + span, bytes - span, span == 0, ids, count, &capacity);
  return status;
}

osp_status osp_tokenizer_encode(const osp_tokenizer *t, const char *text, size_t bytes, int max_length, int32_t **ids,
                                int *count) {
  *ids = NULL;
  *count = 0;
  OSP_TRY(osp_utf8_check("tokenizer: text", text, bytes));
  int32_t *body = NULL;
  int body_count = 0;
  osp_status status = encode_text(t, text, bytes, &body, &body_count);
  const int specials = t->prefix_count + t->suffix_count;
  if (max_length > 0 && body_count > max_length - specials) body_count = max_length > specials ? max_length - specials : 0;
  int capacity = 0;
  for (int i = 0; status == OSP_OK && i < t->prefix_count; i++) status = ids_push(ids, count, &capacity, t->prefix[i]);
  for (int i = 0; status == OSP_OK && i < body_count; i++) status = ids_push(ids, count, &capacity, body[i]);
  for (int i = 0; status == OSP_OK && i < t->suffix_count; i++) status = ids_push(ids, count, &capacity, t->suffix[i]);
  free(body);
  if (status != OSP_OK) {
    free(*ids);
    *ids = NULL;
    *count = 0;
  }
  return status;
}

osp_status osp_tokenizer_encode_prompt(const osp_tokenizer *t, const char *prompt, int max_length, int32_t **ids,
                                       int *count) {
  char *clean;
  size_t bytes;
  *ids = NULL;
  *count = 0;
  OSP_TRY(osp_prompt_clean(prompt, strlen(prompt), &clean, &bytes));
  const osp_status status = osp_tokenizer_encode(t, clean, bytes, max_length, ids, count);
  free(clean);
  return status;
}
