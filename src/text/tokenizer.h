/* The tokenizer of umT5 (and of any SentencePiece Unigram model saved as a Hugging Face
 * tokenizer.json), giving exactly the ids transformers' tokenizer gives: tokenizer(text).input_ids.
 *
 * The steps, as the Rust tokenizers library runs them:
 *   1. added tokens (</s>, <pad>, <unk>, <extra_id_N>, ...) are found in the raw text, leftmost
 *      longest, and become their ids; the text between them goes on:
 *   2. the normalizer: SentencePiece's precompiled character map (applied per grapheme cluster),
 *      Strip, Replace;
 *   3. the pre-tokenizer: WhitespaceSplit, Metaspace (spaces become ▁, a ▁ prepended, words split
 *      before each ▁);
 *   4. the Unigram model: the segmentation of each word with the highest total score (Viterbi);
 *      characters no piece covers become <unk> (consecutive ones fused), or their bytes <0xNN>
 *      with byte fallback;
 *   5. the post-processor's template ("$A </s>").
 * Any other component in the file is refused with a message naming it. */
#ifndef OSP_TEXT_TOKENIZER_H
#define OSP_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "osp.h"

typedef struct osp_tokenizer osp_tokenizer;

/* Reads a tokenizer.json, or the one inside a folder (a tokenizer/ folder, or a model folder
 * holding tokenizer/tokenizer.json). */
osp_status osp_tokenizer_load(const char *path, osp_tokenizer **out);
void osp_tokenizer_free(osp_tokenizer *tokenizer);

/* The ids of `text` (`bytes` bytes of UTF-8; invalid UTF-8 is an error naming the byte offset):
 * *ids malloc'd, *count of them. max_length > 0 truncates as transformers does with
 * truncation=True (the text's tokens cut so that they and the template's special tokens fit). */
osp_status osp_tokenizer_encode(const osp_tokenizer *tokenizer, const char *text, size_t bytes, int max_length,
                                int32_t **ids, int *count);

/* A prompt's ids as Wan2.1's pipelines compute them: cleaned as WanPipeline cleans it
 * (prompt_clean.h), then encoded with truncation to max_length (512 in the pipelines). */
osp_status osp_tokenizer_encode_prompt(const osp_tokenizer *tokenizer, const char *prompt, int max_length,
                                       int32_t **ids, int *count);

/* The padding id (<pad>'s, else 0) and the vocabulary size. */
int32_t osp_tokenizer_pad_id(const osp_tokenizer *tokenizer);
int osp_tokenizer_vocab_size(const osp_tokenizer *tokenizer);

#endif
