/* Prompt cleaning as diffusers' WanPipeline does it (prompt_clean.h): the UTF-8 text is decoded
 * into code points, html.unescape'd twice, stripped, its whitespace runs collapsed, stripped
 * again, and encoded. Python's html.unescape is Lib/html/__init__.py: one regular expression,
 *
 *   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
 *
 * scanned left to right, each match replaced by _replace_charref; the functions below follow its
 * alternatives in order. */
#include "text/prompt_clean.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

typedef struct {
  const char *name;   /* as matched after the '&': "amp;", and "amp" for the legacy names */
  uint32_t points[2]; /* the code points it stands for; points[1] is 0 where there is one */
} html_entity;

#include "text/html_entities.inc" /* HTML_ENTITIES, from scripts/gen_html_entities.py */

enum { NAME_LONGEST = 32 }; /* {1,32}: a name is at most 32 characters, before its ';' */
_Static_assert(HTML_ENTITY_LONGEST <= NAME_LONGEST + 1, "a table name the regular expression cannot match");

/* ---- UTF-8 ---- */

/* The length of the character that byte `lead` starts (0: it starts none) and the range its
 * second byte must lie in: narrower than 0x80..0xBF after 0xE0 and 0xF0 (no overlong forms),
 * 0xED (no surrogates) and 0xF4 (nothing past U+10FFFF), as Python's strict decoder demands. */
static int utf8_lead(unsigned char lead, unsigned char *low, unsigned char *high) {
  *low = 0x80;
  *high = 0xBF;
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0; /* a continuation byte, or an overlong 2-byte form */
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) {
    if (lead == 0xE0) *low = 0xA0;
    if (lead == 0xED) *high = 0x9F;
    return 3;
  }
  if (lead < 0xF5) {
    if (lead == 0xF0) *low = 0x90;
    if (lead == 0xF4) *high = 0x8F;
    return 4;
  }
  return 0;
}

/* Decodes `bytes` bytes of strict UTF-8 into `points` (room for `bytes` code points). */
static osp_status utf8_decode(const unsigned char *text, size_t bytes, uint32_t *points, size_t *count) {
  size_t n = 0;
  for (size_t at = 0; at < bytes;) {
    unsigned char low, high;
    const int length = utf8_lead(text[at], &low, &high);
    if (length == 0)
      return osp_fail(OSP_ERR_ARGUMENT, "prompt: invalid UTF-8 at byte %zu: 0x%02X cannot start a character", at,
                      text[at]);
    if (length > 1 && bytes - at < (size_t)length)
      return osp_fail(OSP_ERR_ARGUMENT, "prompt: invalid UTF-8 at byte %zu: the text ends inside a %d-byte character",
                      at, length);
    static const unsigned char lead_bits[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t point = text[at] & lead_bits[length];
    for (int k = 1; k < length; k++) {
      const unsigned char next = text[at + k];
      if (next < low || next > high)
        return osp_fail(OSP_ERR_ARGUMENT,
                        "prompt: invalid UTF-8 at byte %zu: 0x%02X (byte %zu) cannot continue the character 0x%02X starts",
                        at, next, at + k, text[at]);
      point = point << 6 | (next & 0x3F);
      low = 0x80;
      high = 0xBF;
    }
    points[n++] = point;
    at += (size_t)length;
  }
  *count = n;
  return OSP_OK;
}

static size_t utf8_length(uint32_t point) {
  return point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
}

static char *utf8_put(uint32_t point, char *out) {
  const size_t length = utf8_length(point);
  static const unsigned char lead_marks[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
  for (size_t k = length - 1; k > 0; k--, point >>= 6) out[k] = (char)(0x80 | (point & 0x3F));
  out[0] = (char)(lead_marks[length] | point);
  return out + length;
}

/* `count` code points as a malloc'd, NUL-terminated UTF-8 string. */
static osp_status utf8_encode(const uint32_t *points, size_t count, char **out, size_t *out_bytes) {
  size_t bytes = 0;
  for (size_t i = 0; i < count; i++) bytes += utf8_length(points[i]);
  char *text = malloc(bytes + 1);
  if (!text) return osp_fail(OSP_ERR_MEMORY, "prompt: cannot allocate %zu bytes for the cleaned text", bytes + 1);
  char *end = text;
  for (size_t i = 0; i < count; i++) end = utf8_put(points[i], end);
  *end = '\0';
  *out = text;
  *out_bytes = bytes;
  return OSP_OK;
}

/* ---- html.unescape ---- */

/* The value of `c` as a digit of `base` (10 or 16, ASCII only, as [0-9a-fA-F]), or -1. */
static int digit_value(uint32_t c, int base) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  if (base == 16 && c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  if (base == 16 && c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
  return -1;
}

/* What _replace_charref makes of &#N;, in its order: _invalid_charrefs (0 is U+FFFD, 0x0D stays,
 * 0x80..0x9F read as Windows-1252), then U+FFFD for surrogates and numbers past U+10FFFF, then
 * nothing for _invalid_codepoints (controls other than \t \n \f \r and space, and the
 * noncharacters U+FDD0..U+FDEF and U+xFFFE, U+xFFFF of every plane). Returns the number of code
 * points written to `out`: 0 or 1. */
static size_t numeric_character(uint32_t number, uint32_t *out) {
  static const uint16_t windows_1252[32] = {
      0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};
  if (number == 0) number = 0xFFFD;
  else if (number >= 0x80 && number <= 0x9F) number = windows_1252[number - 0x80];
  else if ((number >= 0xD800 && number <= 0xDFFF) || number > 0x10FFFF) number = 0xFFFD;
  else if ((number >= 0x01 && number <= 0x08) || number == 0x0B || (number >= 0x0E && number <= 0x1F) ||
           number == 0x7F || (number >= 0xFDD0 && number <= 0xFDEF) || (number & 0xFFFE) == 0xFFFE)
    return 0;
  *out = number;
  return 1;
}

/* At the '#' after a '&': #[0-9]+;? or #[xX][0-9a-fA-F]+;?. Writes the character to out + *written
 * and returns how many code points of `s` the reference takes, or 0 where neither matches. */
static size_t numeric_reference(const uint32_t *s, size_t n, uint32_t *out, size_t *written) {
  int base = 10;
  size_t at = 1;
  if (n > 2 && (s[1] == 'x' || s[1] == 'X') && digit_value(s[2], 16) >= 0) {
    base = 16;
    at = 2;
  }
  if (at >= n || digit_value(s[at], base) < 0) return 0;
  /* Python's int() has no limit; past U+10FFFF every number gives U+FFFD, so stop counting there */
  uint32_t number = 0;
  for (int digit; at < n && (digit = digit_value(s[at], base)) >= 0; at++)
    if (number <= 0x10FFFF) number = number * (uint32_t)base + (uint32_t)digit;
  if (at < n && s[at] == ';') at++;
  *written += numeric_character(number, out + *written);
  return at;
}

/* The table's entity whose name is the `length` bytes of `name`, or NULL (binary search over
 * names sorted by their bytes). */
static const html_entity *find_entity(const char *name, size_t length) {
  size_t low = 0, high = HTML_ENTITY_COUNT;
  while (low < high) {
    const size_t middle = low + (high - low) / 2;
    const char *candidate = HTML_ENTITIES[middle].name;
    const size_t candidate_length = strlen(candidate);
    int order = memcmp(candidate, name, candidate_length < length ? candidate_length : length);
    if (order == 0) order = (candidate_length > length) - (candidate_length < length);
    if (order == 0) return &HTML_ENTITIES[middle];
    if (order < 0) low = middle + 1;
    else high = middle;
  }
  return NULL;
}

static bool is_name_character(uint32_t c) {
  return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

static void put_entity(const html_entity *entity, uint32_t *out, size_t *written) {
  out[(*written)++] = entity->points[0];
  if (entity->points[1]) out[(*written)++] = entity->points[1];
}

/* At the character after a '&' (not '#'): a name of 1 to 32 characters [^\t\n\f <&#;] and its ';'
 * if one follows. A name in the table is replaced by its characters; else the longest prefix of
 * at least 2 characters that is in the table (one of the legacy names without ';') is, and the
 * rest of the name kept. Writes to out + *written and returns how many code points of `s` it
 * took, or 0 where nothing is replaced (no name, or one the table does not know: the text stays
 * as it was, which is what _replace_charref's '&' + s gives). Table names are ASCII, so only the
 * ASCII start of a name can match. */
static size_t named_reference(const uint32_t *s, size_t n, uint32_t *out, size_t *written) {
  size_t length = 0;
  while (length < n && length < NAME_LONGEST && is_name_character(s[length])) length++;
  if (length == 0) return 0;
  if (length < n && s[length] == ';') length++;

  char name[NAME_LONGEST + 2];
  size_t ascii = 0;
  for (; ascii < length && s[ascii] < 0x80; ascii++) name[ascii] = (char)s[ascii];
  const html_entity *entity = ascii == length ? find_entity(name, length) : NULL;
  if (entity) {
    put_entity(entity, out, written);
    return length;
  }
  for (size_t prefix = ascii < length - 1 ? ascii : length - 1; prefix >= 2; prefix--) {
    if (!(entity = find_entity(name, prefix))) continue;
    put_entity(entity, out, written);
    for (size_t k = prefix; k < length; k++) out[(*written)++] = s[k];
    return length;
  }
  return 0;
}

/* html.unescape of `n` code points into `out`, which needs no more room than `in`: every reference
 * is longer than what replaces it (a name of at least 2 characters and its '&' become at most 2). */
static size_t html_unescape(const uint32_t *in, size_t n, uint32_t *out) {
  size_t written = 0;
  for (size_t i = 0; i < n;) {
    size_t taken = 0;
    if (in[i] == '&' && i + 1 < n)
      taken = in[i + 1] == '#' ? numeric_reference(in + i + 1, n - i - 1, out, &written)
                               : named_reference(in + i + 1, n - i - 1, out, &written);
    if (taken) i += 1 + taken;
    else out[written++] = in[i++];
  }
  return written;
}

/* ---- whitespace ---- */

/* The `regex` module's \s: Unicode White_Space, found by testing every code point. */
static bool is_regex_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

/* str.isspace(), what str.strip() removes: \s and the separators U+001C..U+001F. */
static bool is_python_space(uint32_t c) {
  return is_regex_space(c) || (c >= 0x1C && c <= 0x1F);
}

/* str.strip(): moves [*first, *end) inward past the spaces at either end. */
static void strip(const uint32_t *points, size_t *first, size_t *end) {
  while (*first < *end && is_python_space(points[*first])) (*first)++;
  while (*end > *first && is_python_space(points[*end - 1])) (*end)--;
}

/* regex.sub(r"\s+", " ", text) in place; returns the new length. */
static size_t collapse_whitespace(uint32_t *points, size_t n) {
  size_t written = 0;
  bool in_run = false;
  for (size_t i = 0; i < n; i++) {
    const bool space = is_regex_space(points[i]);
    if (!space || !in_run) points[written++] = space ? ' ' : points[i];
    in_run = space;
  }
  return written;
}

osp_status osp_prompt_clean(const char *text, size_t bytes, char **out, size_t *out_bytes) {
  *out = NULL;
  *out_bytes = 0;
  if (!text && bytes) return osp_fail(OSP_ERR_ARGUMENT, "prompt: no text, but %zu bytes of it", bytes);
  if (bytes >= SIZE_MAX / sizeof(uint32_t))
    return osp_fail(OSP_ERR_MEMORY, "prompt: %zu bytes is too long a prompt", bytes);
  uint32_t *points = malloc((bytes + 1) * sizeof *points), *unescaped = malloc((bytes + 1) * sizeof *unescaped);
  osp_status status = OSP_OK;
  if (!points || !unescaped)
    status = osp_fail(OSP_ERR_MEMORY, "prompt: cannot allocate %zu bytes to clean it", 2 * (bytes + 1) * sizeof *points);
  size_t n = 0;
  if (status == OSP_OK) status = utf8_decode((const unsigned char *)text, bytes, points, &n);
  if (status == OSP_OK) {
    n = html_unescape(points, n, unescaped);
    n = html_unescape(unescaped, n, points);
    size_t first = 0, end = n;
    strip(points, &first, &end);
    end = first + collapse_whitespace(points + first, end - first);
    strip(points, &first, &end);
    status = utf8_encode(points + first, end - first, out, out_bytes);
  }
  free(points);
  free(unescaped);
  return status;
}
