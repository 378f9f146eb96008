/* The text side of a text-to-video model: a prompt → its context rows for the DiT's cross-attention.
 * The built-in model's frozen word encoder (model/word_encoder.h), or Wan2.1's: the prompt cleaned
 * as WanPipeline cleans it and tokenized (text/tokenizer.h: EOS appended, at most `rows` tokens),
 * encoded by umT5 (model/umt5.h), the rows past the prompt zero as the pipelines pad them. */
#ifndef OSP_PIPELINE_T2V_TEXT_H
#define OSP_PIPELINE_T2V_TEXT_H

#include "core/tensor.h"
#include "model/umt5.h"
#include "model/word_encoder.h"
#include "pipeline/model_dir.h"
#include "text/tokenizer.h"

typedef struct {
  osp_text_kind kind;
  int64_t rows, dim; /* the context's */
  osp_word_encoder words;
  osp_tokenizer *tokenizer;
  osp_umt5 umt5;
} osp_t2v_text;

/* Loads the model folder's text side; dim is the DiT's text_dim, which the encoder must give.
 * umT5 runs on `device` (the word encoder, a table lookup, stays on the host). */
osp_status osp_t2v_text_load(const osp_model_dir *files, int64_t dim, osp_device device, osp_t2v_text *out);

/* context: f32 CPU [rows, dim]. */
osp_status osp_t2v_text_encode(const osp_t2v_text *text, const char *prompt, osp_tensor *context);

void osp_t2v_text_free(osp_t2v_text *text);

#endif
