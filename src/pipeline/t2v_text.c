/* The text side of text to video (t2v_text.h). */
#include "pipeline/t2v_text.h"

#include "core/status.h"

osp_status osp_t2v_text_load(const osp_model_dir *files, int64_t dim, osp_t2v_text *out) {
  *out = (osp_t2v_text){.kind = files->text, .rows = files->text_rows, .dim = dim};
  switch (files->text) {
    case OSP_TEXT_WORDS:
      return osp_word_encoder_load(files->vocab, dim, files->text_rows, files->text_seed, &out->words);
    case OSP_TEXT_UMT5:
      break;
  }
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: umT5 text encoders: not in this build yet", files->dir);
}

osp_status osp_t2v_text_encode(const osp_t2v_text *text, const char *prompt, osp_tensor *context) {
  return osp_word_encoder_encode(&text->words, prompt, context, NULL);
}

size_t osp_t2v_text_bytes(const osp_t2v_text *text) {
  return (size_t)(text->words.count + 1 + text->rows) * (size_t)text->dim * sizeof(float);
}

void osp_t2v_text_free(osp_t2v_text *text) {
  osp_word_encoder_free(&text->words);
  *text = (osp_t2v_text){0};
}
