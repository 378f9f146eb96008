/* Extended grapheme clusters (Unicode UAX #29, rules GB3 to GB999 with GB9c): what a reader sees
 * as one character. The Rust tokenizers library normalizes SentencePiece text cluster by cluster,
 * so OSP's tokenizer needs the same clusters. */
#ifndef OSP_TEXT_GRAPHEME_H
#define OSP_TEXT_GRAPHEME_H

#include <stddef.h>

/* The byte length of the cluster starting at text[0] (valid UTF-8, `bytes` > 0 left). */
size_t osp_grapheme_next(const char *text, size_t bytes);

#endif
