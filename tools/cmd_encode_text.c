/* osp encode-text: a prompt's umT5 context, as Wan2.1's pipelines give it to the DiT (`context`
 * [1, 512, d_model], zero rows past the prompt). A contract like osp dit's: keep it stable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "model/umt5.h"
#include "text/tokenizer.h"

enum { PATH_BYTES = 4096, MAX_ROWS = 1 << 16 };

typedef struct {
  const char *model, *text_encoder, *tokenizer, *prompt, *ids, *max_length, *output, *device;
} encode_arguments;

typedef struct {
  int32_t *ids;
  int64_t count, capacity;
} token_ids;

static osp_status append_id(token_ids *t, int32_t id) {
  if (t->count == t->capacity) {
    const int64_t capacity = t->capacity ? 2 * t->capacity : 64;
    int32_t *ids = realloc(t->ids, (size_t)capacity * sizeof *ids);
    if (!ids) return osp_fail(OSP_ERR_MEMORY, "out of memory for the token ids");
    t->ids = ids;
    t->capacity = capacity;
  }
  t->ids[t->count++] = id;
  return OSP_OK;
}

/* One id per line, as `osp tokenize` prints them (EOS included); blank lines are skipped. */
static osp_status read_ids_file(const char *path, token_ids *t) {
  FILE *f = fopen(path, "r");
  if (!f) return osp_fail(OSP_ERR_IO, "%s: cannot open the token ids: %s", path, strerror(errno));
  char line[64];
  osp_status status = OSP_OK;
  for (int number = 1; status == OSP_OK && fgets(line, sizeof line, f); number++) {
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[strspn(line, " \t")]) continue;
    char *end;
    errno = 0;
    const long id = strtol(line, &end, 10);
    if (end == line || *end || errno || id < 0 || id > INT32_MAX)
      status = osp_fail(OSP_ERR_FORMAT, "%s: line %d: expected a token id (an integer ≥ 0), found '%s'",
                        path, number, line);
    else
      status = append_id(t, (int32_t)id);
  }
  fclose(f);
  if (status == OSP_OK && t->count == 0) status = osp_fail(OSP_ERR_FORMAT, "%s: no token ids", path);
  return status;
}

/* The prompt's token ids: from --ids, or from -p through the model's tokenizer as WanPipeline
 * runs it (the prompt cleaned, truncated to the context's rows). */
static osp_status prompt_ids(const encode_arguments *a, int64_t rows, token_ids *t) {
  if (a->ids) return read_ids_file(a->ids, t);
  char path[PATH_BYTES];
  snprintf(path, sizeof path, "%s", a->tokenizer ? a->tokenizer : a->model);
  osp_tokenizer *tokenizer;
  OSP_TRY(osp_tokenizer_load(path, &tokenizer));
  int count = 0;
  const osp_status status = osp_tokenizer_encode_prompt(tokenizer, a->prompt, (int)rows, &t->ids, &count);
  t->count = t->capacity = count;
  osp_tokenizer_free(tokenizer);
  return status;
}

static void text_encoder_path(const encode_arguments *a, char path[PATH_BYTES]) {
  if (a->text_encoder)
    snprintf(path, PATH_BYTES, "%s", a->text_encoder);
  else
    snprintf(path, PATH_BYTES, "%s/text_encoder", a->model);
}

static double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static osp_status encode(const encode_arguments *a, int64_t rows, const token_ids *t) {
  if (t->count > rows)
    return osp_fail(OSP_ERR_ARGUMENT, "%lld token ids, more than the context's %lld rows (--max-length)",
                    (long long)t->count, (long long)rows);
  char path[PATH_BYTES];
  text_encoder_path(a, path);
  const double start = osp_seconds();
  osp_device device;
  OSP_TRY(cli_parse_device(a->device, OSP_CPU, &device));
  osp_umt5 m;
  OSP_TRY(osp_umt5_load(path, &m));
  if (device != OSP_CPU) {
    osp_umt5 host = m;
    const osp_status moved = osp_umt5_to_device(&host, device, &m);
    osp_umt5_free(&host);
    OSP_TRY(moved);
  }
  const double loaded = osp_seconds();
  const int64_t shape[3] = {1, rows, m.config.d_model};
  osp_tensor context = osp_tensor_make(NULL, OSP_F32, OSP_CPU, 3, shape);
  context.data = malloc(osp_tensor_bytes(&context));
  osp_status status = context.data ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "cannot allocate the context");
  if (status == OSP_OK) status = osp_umt5_encode(&m, t->ids, t->count, &context);
  const double encoded = osp_seconds();
  if (status == OSP_OK) {
    osp_info("encode-text: %lld tokens, umT5 of %d layers (d_model %d) on %s: load %.3f s, encode %.3f s",
             (long long)t->count, m.config.num_layers, m.config.d_model, device == OSP_CPU ? "the CPU" : "CUDA",
             loaded - start, encoded - loaded);
    osp_info("encode-text: memory held: weights %.1f MiB (%s), activations %.1f MiB, context %.1f MiB",
             mib(m.weight_bytes), m.embedding.dtype == OSP_BF16 ? "bf16" : "f32",
             mib(osp_umt5_activation_bytes(&m.config, m.device, t->count)), mib(osp_tensor_bytes(&context)));
    const osp_st_write_entry entry = {"context", OSP_ST_F32, 3, shape, context.data};
    status = osp_st_write(a->output, &entry, 1);
  }
  free(context.data);
  osp_umt5_free(&m);
  return status;
}

int cmd_encode_text(int argc, char **argv) {
  encode_arguments a = {0};
  cli_option options[] = {
      {"--model", NULL, "DIR", "a diffusers-layout model folder (DIR/text_encoder/, DIR/tokenizer/)", &a.model, NULL},
      {"--text-encoder", NULL, "PATH", "the umT5 weights instead: a folder (config.json, model.safetensors) or a "
                                       "safetensors file with config.json beside it (transformers or Wan2.1 names)",
       &a.text_encoder, NULL},
      {"--tokenizer", NULL, "PATH", "the tokenizer instead of DIR/tokenizer/: a tokenizer.json or its folder",
       &a.tokenizer, NULL},
      {"--prompt", "-p", "TEXT", "the prompt: cleaned and tokenized as WanPipeline does", &a.prompt, NULL},
      {"--ids", NULL, "FILE", "the prompt's token ids instead, one per line as `osp tokenize` prints them "
                              "(EOS included)", &a.ids, NULL},
      {"--max-length", NULL, "N", "rows of the context (default 512, as Wan2.1 pads)", &a.max_length, NULL},
      {"--output", "-o", "O.safetensors", "where to write context [1, N, d_model] (float32)", &a.output, NULL},
      {"--device", NULL, "cpu|cuda", "where the encoder runs (default cpu; cuda: bf16 weights and activations, "
                                     "f32 arithmetic)", &a.device, NULL},
      {0},
  };
  cli_command command = {
      .name = "encode-text",
      .usage = "osp encode-text --model DIR (-p TEXT | --ids FILE) -o O.safetensors",
      .summary = "Encodes a prompt with the umT5 text encoder and writes the DiT's context.",
      .details = "The prompt is cleaned as diffusers' WanPipeline cleans it (html.unescape twice, whitespace\n"
                 "collapsed), tokenized with the model's tokenizer (EOS appended, truncated to --max-length).\n"
                 "The encoder runs on the prompt's tokens only (f32 on the CPU, where bf16 weights stay\n"
                 "bf16 in memory; bf16 on CUDA); rows past the prompt are zero, as Wan2.1 and diffusers\n"
                 "pad the context.\n"
                 "The output is written to a temporary file and renamed.",
      .options = options,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!a.model && !a.text_encoder) return cli_usage_error(&command, "give --model DIR or --text-encoder PATH");
  if (a.prompt && !a.model && !a.tokenizer) return cli_usage_error(&command, "-p needs --model DIR or --tokenizer PATH");
  if (!a.prompt == !a.ids) return cli_usage_error(&command, "give exactly one of -p TEXT and --ids FILE");
  if (!a.output) return cli_usage_error(&command, "missing -o O.safetensors");
  long long rows = 512;
  if (a.max_length && (rc = cli_parse_count(&command, "--max-length", a.max_length, &rows))) return rc;
  if (rows < 1 || rows > MAX_ROWS) return cli_usage_error(&command, "--max-length: expected 1 to %d", MAX_ROWS);
  token_ids t = {0};
  osp_status status = prompt_ids(&a, rows, &t);
  if (status == OSP_OK) status = encode(&a, rows, &t);
  free(t.ids);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}
