/* Prompt cleaning: what diffusers' WanPipeline does to every prompt before tokenizing it
 * (diffusers/pipelines/wan/pipeline_wan.py, prompt_clean), byte for byte:
 *
 *   text = html.unescape(html.unescape(text)).strip()   # basic_clean
 *   text = regex.sub(r"\s+", " ", text).strip()         # whitespace_clean
 *
 * with Python 3.11's html.unescape (numeric references, the HTML5 named references with the
 * longest-prefix rule for names without ';'), str.strip() (the characters of str.isspace()) and
 * the `regex` module's \s (Unicode White_Space, which lacks U+001C..U+001F that isspace() has).
 *
 * basic_clean also runs ftfy.fix_text first when the ftfy package is installed. It is not a
 * dependency of diffusers nor installed in the reference venv, so OSP does not implement ftfy: the
 * reference is the pipeline without it. */
#ifndef OSP_TEXT_PROMPT_CLEAN_H
#define OSP_TEXT_PROMPT_CLEAN_H

#include <stddef.h>

#include "osp.h"

/* Cleans `bytes` bytes of UTF-8 `text` into `*out` (malloc'd, NUL-terminated; the caller frees
 * it) of `*out_bytes` bytes, not counting the NUL (a prompt may hold U+0000 itself). Text that is
 * not valid UTF-8 (as Python's strict decoder judges it) is refused with the byte offset where
 * the bad character starts. */
osp_status osp_prompt_clean(const char *text, size_t bytes, char **out, size_t *out_bytes);

#endif
