/* UTF-8 as Python and Rust strings hold it: strict (no overlong forms, no surrogates, nothing
 * past U+10FFFF, no truncated characters). */
#ifndef OSP_TEXT_UTF8_H
#define OSP_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "osp.h"

/* The length in bytes of the valid character at text[0] (of `bytes` left), or 0 when it is not
 * one; *point gets the code point. */
int osp_utf8_next(const unsigned char *text, size_t bytes, uint32_t *point);

/* Checks that the whole text is valid; the message names `what` and the byte offset where the
 * first bad character starts. */
osp_status osp_utf8_check(const char *what, const char *text, size_t bytes);

/* Writes the UTF-8 bytes of a code point (1 to 4) into out; returns their count. */
int osp_utf8_put(uint32_t point, unsigned char out[4]);

#endif
