/* The text side of text to video (t2v_text.h). */
#include "pipeline/t2v_text.h"

#include <stdlib.h>

#include "core/status.h"

/* The encoder read on the host (f32), then, for another device, copied there (bf16 matrices). */
static osp_status read_umt5(const osp_model_dir *files, osp_device device, osp_umt5 *m) {
  if (files->layout == OSP_LAYOUT_ORIGINAL) {
    osp_umt5_config xxl;
    osp_umt5_config_xxl(&xxl);
    OSP_TRY(osp_umt5_load_file(&xxl, files->text_encoder, m));
  } else {
    OSP_TRY(osp_umt5_load(files->text_encoder, m));
  }
  if (device == OSP_CPU) return OSP_OK;
  osp_umt5 host = *m;
  const osp_status status = osp_umt5_to_device(&host, device, m);
  osp_umt5_free(&host);
  return status;
}

static osp_status load_umt5(const osp_model_dir *files, int64_t dim, osp_device device, osp_t2v_text *out) {
  OSP_TRY(osp_tokenizer_load(files->tokenizer, &out->tokenizer));
  OSP_TRY(read_umt5(files, device, &out->umt5));
  if (out->umt5.config.d_model != dim)
    return osp_fail(OSP_ERR_SHAPE, "%s: the text encoder gives %d columns (d_model), the DiT takes %lld (text_dim)",
                    files->text_encoder, out->umt5.config.d_model, (long long)dim);
  if (osp_tokenizer_vocab_size(out->tokenizer) > out->umt5.config.vocab_size)
    return osp_fail(OSP_ERR_SHAPE, "%s: %d pieces, more than the text encoder's vocabulary of %d", files->tokenizer,
                    osp_tokenizer_vocab_size(out->tokenizer), out->umt5.config.vocab_size);
  return OSP_OK;
}

osp_status osp_t2v_text_load(const osp_model_dir *files, int64_t dim, osp_device device, osp_t2v_text *out) {
  *out = (osp_t2v_text){.kind = files->text, .rows = files->text_rows, .dim = dim};
  if (files->text == OSP_TEXT_UMT5) return load_umt5(files, dim, device, out);
  return osp_word_encoder_load(files->vocab, dim, files->text_rows, files->text_seed, &out->words);
}

osp_status osp_t2v_text_encode(const osp_t2v_text *text, const char *prompt, osp_tensor *context) {
  if (text->kind == OSP_TEXT_WORDS) return osp_word_encoder_encode(&text->words, prompt, context, NULL);
  int32_t *ids;
  int count;
  OSP_TRY(osp_tokenizer_encode_prompt(text->tokenizer, prompt, (int)text->rows, &ids, &count));
  const osp_status status = osp_umt5_encode(&text->umt5, ids, count, context);
  free(ids);
  return status;
}

void osp_t2v_text_free(osp_t2v_text *text) {
  if (text->kind == OSP_TEXT_WORDS) osp_word_encoder_free(&text->words);
  if (text->tokenizer) osp_tokenizer_free(text->tokenizer);
  if (text->kind == OSP_TEXT_UMT5 && text->umt5.layers) osp_umt5_free(&text->umt5);
  *text = (osp_t2v_text){0};
}
