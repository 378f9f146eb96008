/* SentencePiece's precompiled character map, as the Rust crate spm_precompiled reads and applies
 * it (the "Precompiled" normalizer of tokenizer.json). The blob, base64 in the JSON:
 *   u32 little-endian T | T bytes: the double-array trie, u32 units | replacements, NUL-terminated
 * A trie unit u holds: has_leaf = bit 8; value = u & 0x7FFFFFFF; label = u & 0x800000FF;
 * offset = (u >> 10) << ((u & 0x200) >> 6). Searching walks the key's bytes from node 0:
 * node ^= offset(unit(node)), node ^= byte; the unit there must carry that byte as its label; where
 * it has a leaf, unit(node ^ offset) holds a match's value (the start of its replacement).
 * Text is normalized one grapheme cluster at a time: a cluster shorter than 6 bytes is looked up
 * whole and, if any prefix of it is a key, replaced by the FIRST (shortest) match's replacement;
 * otherwise each of its characters is looked up alone and replaced, or kept. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "text/grapheme.h"
#include "text/tokenizer_internal.h"
#include "text/utf8.h"

enum { WHOLE_CLUSTER_BELOW = 6 };

static int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes standard base64 ('=' padding optional) into a malloc'd buffer. */
static osp_status base64_decode(const char *label, const char *text, unsigned char **out, size_t *size) {
  const size_t n = strlen(text);
  *out = malloc(n / 4 * 3 + 3);
  if (!*out) return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
  uint32_t bits = 0;
  int held = 0;
  *size = 0;
  for (size_t i = 0; i < n && text[i] != '='; i++) {
    const int v = base64_value((unsigned char)text[i]);
    if (v < 0) {
      free(*out);
      return osp_fail(OSP_ERR_FORMAT, "%s: precompiled_charsmap: not base64 (byte %zu)", label, i);
    }
    bits = bits << 6 | (uint32_t)v;
    if ((held += 6) >= 8) (*out)[(*size)++] = (unsigned char)(bits >> (held -= 8));
  }
  return OSP_OK;
}

osp_status precompiled_load(const char *label, const char *base64, precompiled_map *map) {
  *map = (precompiled_map){0};
  unsigned char *blob;
  size_t size = 0;
  OSP_TRY(base64_decode(label, base64, &blob, &size));
  uint32_t trie_bytes = 0;
  if (size >= 4) memcpy(&trie_bytes, blob, 4);
  osp_status status = OSP_OK;
  if (size < 4 || trie_bytes % 4 || trie_bytes > size - 4 || trie_bytes == 0)
    status = osp_fail(OSP_ERR_FORMAT, "%s: precompiled_charsmap: a trie of %u bytes in a map of %zu", label,
                      trie_bytes, size);
  if (status == OSP_OK) {
    map->unit_count = trie_bytes / 4;
    map->replacement_bytes = size - 4 - trie_bytes;
    map->units = malloc(trie_bytes);
    map->replacements = malloc(map->replacement_bytes + 1);
    if (!map->units || !map->replacements) status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory", label);
  }
  if (status == OSP_OK) {
    memcpy(map->units, blob + 4, trie_bytes);
    memcpy(map->replacements, blob + 4 + trie_bytes, map->replacement_bytes);
    map->replacements[map->replacement_bytes] = '\0';
  }
  free(blob);
  if (status != OSP_OK) precompiled_free(map);
  return status;
}

void precompiled_free(precompiled_map *map) {
  free(map->units);
  free(map->replacements);
  *map = (precompiled_map){0};
}

static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* The value of the first (shortest) key that is a prefix of key[0, n), or −1. */
static long first_match(const precompiled_map *map, const unsigned char *key, size_t n) {
  size_t node = unit_offset(map->units[0]);
  for (size_t i = 0; i < n && key[i]; i++) {
    node ^= key[i];
    if (node >= map->unit_count) return -1;
    const uint32_t unit = map->units[node];
    if ((unit & ((1u << 31) | 0xFF)) != key[i]) return -1;
    node ^= unit_offset(unit);
    if (node >= map->unit_count) return -1;
    if ((unit >> 8) & 1) return (long)(map->units[node] & ((1u << 31) - 1));
  }
  return -1;
}

/* Appends the replacement of the first key prefixing chunk; false when none is. */
static bool replace(const precompiled_map *map, const char *chunk, size_t n, text_buffer *out, osp_status *status) {
  const long at = first_match(map, (const unsigned char *)chunk, n);
  if (at < 0 || (size_t)at >= map->replacement_bytes) return false;
  const char *replacement = map->replacements + at;
  *status = text_append(out, replacement, strlen(replacement));
  return true;
}

osp_status precompiled_normalize(const precompiled_map *map, const char *text, size_t bytes, text_buffer *out) {
  osp_status status = OSP_OK;
  for (size_t at = 0; at < bytes && status == OSP_OK;) {
    const size_t cluster = osp_grapheme_next(text + at, bytes - at);
    if (cluster < WHOLE_CLUSTER_BELOW && replace(map, text + at, cluster, out, &status)) {
      at += cluster;
      continue;
    }
    for (size_t end = at + cluster; at < end && status == OSP_OK;) {
      uint32_t point;
      const size_t length = (size_t)osp_utf8_next((const unsigned char *)text + at, bytes - at, &point);
      if (!replace(map, text + at, length, out, &status)) status = text_append(out, text + at, length);
      at += length;
    }
  }
  return status;
}
