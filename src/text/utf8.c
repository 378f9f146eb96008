/* Strict UTF-8 (utf8.h). */
#include "text/utf8.h"

#include "core/status.h"

int osp_utf8_next(const unsigned char *text, size_t bytes, uint32_t *point) {
  const unsigned char lead = text[0];
  if (lead < 0x80) {
    *point = lead;
    return 1;
  }
  int length;
  unsigned char low = 0x80, high = 0xBF;
  if (lead < 0xC2) return 0; /* a continuation byte, or an overlong 2-byte form */
  if (lead < 0xE0) {
    length = 2;
  } else if (lead < 0xF0) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;  /* overlong */
    if (lead == 0xED) high = 0x9F; /* surrogates */
  } else if (lead < 0xF5) {
    length = 4;
    if (lead == 0xF0) low = 0x90;  /* overlong */
    if (lead == 0xF4) high = 0x8F; /* past U+10FFFF */
  } else {
    return 0;
  }
  if ((size_t)length > bytes || text[1] < low || text[1] > high) return 0;
  uint32_t value = lead & (0x7F >> length);
  for (int i = 1; i < length; i++) {
    if (i > 1 && (text[i] & 0xC0) != 0x80) return 0;
    value = value << 6 | (text[i] & 0x3F);
  }
  *point = value;
  return length;
}

osp_status osp_utf8_check(const char *what, const char *text, size_t bytes) {
  const unsigned char *t = (const unsigned char *)text;
  for (size_t at = 0; at < bytes;) {
    uint32_t point;
    const int length = osp_utf8_next(t + at, bytes - at, &point);
    if (!length)
      return osp_fail(OSP_ERR_ARGUMENT, "%s: invalid UTF-8 at byte %zu (0x%02X): expected text in UTF-8", what, at,
                      t[at]);
    at += (size_t)length;
  }
  return OSP_OK;
}

int osp_utf8_put(uint32_t point, unsigned char out[4]) {
  if (point < 0x80) {
    out[0] = (unsigned char)point;
    return 1;
  }
  if (point < 0x800) {
    out[0] = (unsigned char)(0xC0 | point >> 6);
    out[1] = (unsigned char)(0x80 | (point & 0x3F));
    return 2;
  }
  if (point < 0x10000) {
    out[0] = (unsigned char)(0xE0 | point >> 12);
    out[1] = (unsigned char)(0x80 | (point >> 6 & 0x3F));
    out[2] = (unsigned char)(0x80 | (point & 0x3F));
    return 3;
  }
  out[0] = (unsigned char)(0xF0 | point >> 18);
  out[1] = (unsigned char)(0x80 | (point >> 12 & 0x3F));
  out[2] = (unsigned char)(0x80 | (point >> 6 & 0x3F));
  out[3] = (unsigned char)(0x80 | (point & 0x3F));
  return 4;
}
