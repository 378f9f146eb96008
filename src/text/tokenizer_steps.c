/* The normalizer and pre-tokenizer steps of a tokenizer.json (tokenizer_internal.h), as the Rust
 * tokenizers library defines them:
 *   Precompiled  SentencePiece's character map (precompiled.c)
 *   Strip        removes Unicode whitespace on the left and/or right
 *   Replace      a string, or the regex " {2,}" (a run of two or more spaces) that the T5
 *                converter writes, by `content`
 *   WhitespaceSplit  words are the runs of non-whitespace (the whitespace dropped)
 *   Metaspace    in each word ' ' becomes the replacement (▁), one ▁ is prepended where the word
 *                does not start with one (prepend_scheme "always"; "first": only at the start of
 *                the whole text; "never"), and with split the word is cut before every ▁. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "text/tokenizer_internal.h"
#include "text/utf8.h"

osp_status text_append(text_buffer *b, const char *bytes, size_t n) {
  if (b->size + n + 1 > b->capacity) {
    size_t capacity = b->capacity ? b->capacity : 64;
    while (capacity < b->size + n + 1) capacity *= 2;
    char *grown = realloc(b->data, capacity);
    if (!grown) return osp_fail(OSP_ERR_MEMORY, "tokenizer: out of memory");
    b->data = grown;
    b->capacity = capacity;
  }
  memcpy(b->data + b->size, bytes, n);
  b->size += n;
  b->data[b->size] = '\0';
  return OSP_OK;
}

void text_free(text_buffer *b) {
  free(b->data);
  *b = (text_buffer){0};
}

bool is_unicode_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- reading ---- */

static const char *type_of(json_t *step) { return json_string_value(json_object_get(step, "type")); }

/* A Sequence's list under `key`, or the value itself as a list of one. */
static json_t *as_list(json_t *value, const char *key) {
  const char *type = type_of(value);
  if (type && !strcmp(type, "Sequence")) return json_incref(json_object_get(value, key));
  json_t *list = json_array();
  json_array_append(list, value);
  return list;
}

static osp_status read_replace(const char *label, json_t *step, normalizer_step *n) {
  json_t *pattern = json_object_get(step, "pattern");
  const char *content = json_string_value(json_object_get(step, "content"));
  const char *literal = json_string_value(json_object_get(pattern, "String"));
  const char *regex = json_string_value(json_object_get(pattern, "Regex"));
  if (!content || (!literal && !regex))
    return osp_fail(OSP_ERR_FORMAT, "%s: normalizer Replace: expected a pattern and a content", label);
  if (regex && strcmp(regex, " {2,}"))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: normalizer Replace with the regex \"%s\": OSP knows \" {2,}\" (the T5 "
                    "converter's)", label, regex);
  if (literal && !literal[0]) return osp_fail(OSP_ERR_FORMAT, "%s: normalizer Replace: an empty pattern", label);
  n->kind = regex ? STEP_REPLACE_SPACES : STEP_REPLACE_STRING;
  n->min_run = 2;
  n->pattern = strdup(literal ? literal : " ");
  n->content = strdup(content);
  if (!n->pattern || !n->content) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
  return OSP_OK;
}

static osp_status read_normalizer_step(const char *label, json_t *step, normalizer_step *n) {
  const char *type = type_of(step);
  if (!type) return osp_fail(OSP_ERR_FORMAT, "%s: a normalizer without a \"type\"", label);
  if (!strcmp(type, "Precompiled")) {
    const char *map = json_string_value(json_object_get(step, "precompiled_charsmap"));
    if (!map) return osp_fail(OSP_ERR_FORMAT, "%s: normalizer Precompiled without its precompiled_charsmap", label);
    n->kind = STEP_PRECOMPILED;
    return precompiled_load(label, map, &n->map);
  }
  if (!strcmp(type, "Strip")) {
    n->kind = STEP_STRIP;
    n->left = json_is_true(json_object_get(step, "strip_left"));
    n->right = json_is_true(json_object_get(step, "strip_right"));
    return OSP_OK;
  }
  if (!strcmp(type, "Replace")) return read_replace(label, step, n);
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: normalizer \"%s\": OSP's tokenizer knows Precompiled, Strip and Replace "
                  "(those of SentencePiece models such as umT5)", label, type);
}

osp_status normalizer_read(const char *label, json_t *value, normalizer_step **steps, int *count) {
  *steps = NULL;
  *count = 0;
  if (!value || json_is_null(value)) return OSP_OK;
  json_t *list = as_list(value, "normalizers");
  osp_status status = json_is_array(list) ? OSP_OK : osp_fail(OSP_ERR_FORMAT, "%s: normalizer Sequence without its list", label);
  const size_t n = json_array_size(list);
  if (status == OSP_OK && n && !(*steps = calloc(n, sizeof **steps))) status = osp_fail(OSP_ERR_MEMORY, "out of memory");
  for (size_t i = 0; status == OSP_OK && i < n; i++, (*count)++)
    status = read_normalizer_step(label, json_array_get(list, i), &(*steps)[i]);
  json_decref(list);
  return status;
}

void normalizer_free(normalizer_step *steps, int count) {
  for (int i = 0; i < count; i++) {
    precompiled_free(&steps[i].map);
    free(steps[i].pattern);
    free(steps[i].content);
  }
  free(steps);
}

static osp_status read_metaspace(const char *label, json_t *step, pre_tokenizer_step *p) {
  const char *replacement = json_string_value(json_object_get(step, "replacement"));
  const char *scheme = json_string_value(json_object_get(step, "prepend_scheme"));
  json_t *split = json_object_get(step, "split");
  if (!replacement || !replacement[0] || strlen(replacement) >= sizeof p->replacement)
    return osp_fail(OSP_ERR_FORMAT, "%s: pre-tokenizer Metaspace: expected a one-character replacement", label);
  strcpy(p->replacement, replacement);
  p->kind = PRE_METASPACE;
  p->split = split ? json_is_true(split) : true;
  if (scheme) {
    if (!strcmp(scheme, "always")) p->prepend = PREPEND_ALWAYS;
    else if (!strcmp(scheme, "first")) p->prepend = PREPEND_FIRST;
    else if (!strcmp(scheme, "never")) p->prepend = PREPEND_NEVER;
    else return osp_fail(OSP_ERR_FORMAT, "%s: Metaspace prepend_scheme \"%s\": expected always, first or never", label, scheme);
  } else { /* files from before prepend_scheme: add_prefix_space */
    p->prepend = json_is_false(json_object_get(step, "add_prefix_space")) ? PREPEND_NEVER : PREPEND_ALWAYS;
  }
  return OSP_OK;
}

osp_status pre_tokenizer_read(const char *label, json_t *value, pre_tokenizer_step **steps, int *count) {
  *steps = NULL;
  *count = 0;
  if (!value || json_is_null(value)) return OSP_OK;
  json_t *list = as_list(value, "pretokenizers");
  osp_status status = json_is_array(list) ? OSP_OK : osp_fail(OSP_ERR_FORMAT, "%s: pre-tokenizer Sequence without its list", label);
  const size_t n = json_array_size(list);
  if (status == OSP_OK && n && !(*steps = calloc(n, sizeof **steps))) status = osp_fail(OSP_ERR_MEMORY, "out of memory");
  for (size_t i = 0; status == OSP_OK && i < n; i++, (*count)++) {
    json_t *step = json_array_get(list, i);
    const char *type = type_of(step);
    if (type && !strcmp(type, "Metaspace")) status = read_metaspace(label, step, &(*steps)[i]);
    else if (type && !strcmp(type, "WhitespaceSplit")) (*steps)[i].kind = PRE_WHITESPACE_SPLIT;
    else status = osp_fail(OSP_ERR_UNSUPPORTED, "%s: pre-tokenizer \"%s\": OSP's tokenizer knows Metaspace and "
                           "WhitespaceSplit (those of SentencePiece models such as umT5)", label, type ? type : "?");
  }
  json_decref(list);
  return status;
}

/* ---- normalizing ---- */

/* The length of the whitespace character at text[0], or 0. */
static size_t whitespace_at(const char *text, size_t bytes) {
  uint32_t point;
  const int n = osp_utf8_next((const unsigned char *)text, bytes, &point);
  return n && is_unicode_whitespace(point) ? (size_t)n : 0;
}

static osp_status strip(const normalizer_step *s, const char *text, size_t bytes, text_buffer *out) {
  size_t begin = 0, end = bytes;
  if (s->left)
    for (size_t n; begin < end && (n = whitespace_at(text + begin, end - begin));) begin += n;
  if (s->right)
    while (end > begin) { /* back to the start of the last character */
      size_t last = end - 1;
      while (last > begin && ((unsigned char)text[last] & 0xC0) == 0x80) last--;
      if (!whitespace_at(text + last, end - last)) break;
      end = last;
    }
  return text_append(out, text + begin, end - begin);
}

/* Replaces every occurrence of the pattern (for spaces: every run of at least min_run). */
static osp_status replace(const normalizer_step *s, const char *text, size_t bytes, text_buffer *out) {
  const size_t p = strlen(s->pattern);
  osp_status status = OSP_OK;
  for (size_t at = 0; at < bytes && status == OSP_OK;) {
    size_t run = 0;
    if (s->kind == STEP_REPLACE_SPACES)
      while (at + run < bytes && text[at + run] == ' ') run++;
    else if (at + p <= bytes && !memcmp(text + at, s->pattern, p))
      run = p;
    const bool hit = s->kind == STEP_REPLACE_SPACES ? run >= (size_t)s->min_run : run > 0;
    if (hit) {
      status = text_append(out, s->content, strlen(s->content));
      at += run;
    } else {
      const size_t n = run ? run : 1;
      status = text_append(out, text + at, n);
      at += n;
    }
  }
  return status;
}

osp_status normalize(const normalizer_step *steps, int count, const char *text, size_t bytes, text_buffer *out) {
  text_buffer current = {0}, next = {0};
  osp_status status = text_append(&current, text, bytes);
  for (int i = 0; status == OSP_OK && i < count; i++) {
    next.size = 0;
    status = text_append(&next, "", 0);
    const normalizer_step *s = &steps[i];
    if (status == OSP_OK) {
      if (s->kind == STEP_PRECOMPILED) status = precompiled_normalize(&s->map, current.data, current.size, &next);
      else if (s->kind == STEP_STRIP) status = strip(s, current.data, current.size, &next);
      else status = replace(s, current.data, current.size, &next);
    }
    const text_buffer swap = current;
    current = next;
    next = swap;
  }
  if (status == OSP_OK) status = text_append(out, current.data, current.size);
  text_free(&current);
  text_free(&next);
  return status;
}

/* ---- pre-tokenizing: words as spans of one buffer ---- */

static osp_status add_word(word_list *list, size_t begin, size_t end, bool at_start) {
  if (list->count == list->capacity) {
    const int capacity = list->capacity ? 2 * list->capacity : 16;
    word_span *grown = realloc(list->words, (size_t)capacity * sizeof *grown);
    if (!grown) return osp_fail(OSP_ERR_MEMORY, "tokenizer: out of memory");
    list->words = grown;
    list->capacity = capacity;
  }
  list->words[list->count++] = (word_span){begin, end, at_start};
  return OSP_OK;
}

void word_list_free(word_list *list) {
  text_free(&list->text);
  free(list->words);
  *list = (word_list){0};
}

/* WhitespaceSplit: the runs of non-whitespace of each word. */
static osp_status whitespace_split(const word_list *in, word_list *out) {
  osp_status status = text_append(&out->text, in->text.data, in->text.size);
  for (int w = 0; status == OSP_OK && w < in->count; w++) {
    const word_span *word = &in->words[w];
    size_t at = word->begin, start = word->begin;
    bool any_before = false;
    while (status == OSP_OK && at <= word->end) {
      const size_t space = at < word->end ? whitespace_at(in->text.data + at, word->end - at) : 0;
      if (at == word->end || space) {
        if (at > start) status = add_word(out, start, at, word->at_start && !any_before);
        if (at > start || space) any_before = true;
        if (at == word->end) break;
        at += space;
        start = at;
      } else {
        uint32_t point;
        at += (size_t)osp_utf8_next((const unsigned char *)in->text.data + at, word->end - at, &point);
      }
    }
  }
  return status;
}

/* Metaspace: each word rewritten into out's buffer, then cut before each replacement. */
static osp_status metaspace(const pre_tokenizer_step *s, const word_list *in, word_list *out) {
  const size_t r = strlen(s->replacement);
  osp_status status = OSP_OK;
  for (int w = 0; status == OSP_OK && w < in->count; w++) {
    const word_span *word = &in->words[w];
    const char *text = in->text.data + word->begin;
    const size_t bytes = word->end - word->begin, begin = out->text.size;
    /* Spaces become the replacement first, so a word that starts with one needs no prefix. */
    const bool starts_with = (bytes >= r && !memcmp(text, s->replacement, r)) || (bytes && text[0] == ' ');
    const bool prepend = !starts_with && (s->prepend == PREPEND_ALWAYS || (s->prepend == PREPEND_FIRST && word->at_start));
    if (prepend) status = text_append(&out->text, s->replacement, r);
    for (size_t i = 0; status == OSP_OK && i < bytes; i++)
      status = text[i] == ' ' ? text_append(&out->text, s->replacement, r) : text_append(&out->text, text + i, 1);
    const size_t end = out->text.size;
    size_t start = begin;
    for (size_t at = begin + 1; status == OSP_OK && s->split && at + r <= end; at++)
      if (!memcmp(out->text.data + at, s->replacement, r)) {
        status = add_word(out, start, at, word->at_start && start == begin);
        start = at;
      }
    if (status == OSP_OK && end > start) status = add_word(out, start, end, word->at_start && start == begin);
  }
  return status;
}

osp_status pre_tokenize(const pre_tokenizer_step *steps, int count, const char *text, size_t bytes, bool at_start,
                        word_list *out) {
  word_list current = {0};
  osp_status status = text_append(&current.text, text, bytes);
  if (status == OSP_OK && bytes) status = add_word(&current, 0, bytes, at_start);
  for (int i = 0; status == OSP_OK && i < count; i++) {
    word_list next = {0};
    status = steps[i].kind == PRE_WHITESPACE_SPLIT ? whitespace_split(&current, &next) : metaspace(&steps[i], &current, &next);
    word_list_free(&current);
    current = next;
  }
  if (status == OSP_OK) *out = current;
  else word_list_free(&current);
  return status;
}
