/* osp tokenize: a text's token ids, exactly transformers' tokenizer(text).input_ids. A contract
 * like osp dit's: keep it stable. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "commands.h"
#include "core/status.h"
#include "text/prompt_clean.h"
#include "text/tokenizer.h"

typedef struct {
  const char *model, *prompt, *file, *batch, *max_length;
  int pad, clean;
} tokenize_arguments;

/* The whole file, any bytes (the tokenizer judges them). */
static osp_status read_text_file(const char *path, char **text, size_t *bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return osp_fail(OSP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t capacity = 4096;
  *bytes = 0;
  *text = malloc(capacity);
  osp_status status = *text ? OSP_OK : osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  for (size_t n; status == OSP_OK && (n = fread(*text + *bytes, 1, capacity - *bytes, f)) > 0;) {
    *bytes += n;
    if (*bytes == capacity) {
      char *grown = realloc(*text, capacity *= 2);
      if (grown) *text = grown;
      else status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
    }
  }
  if (status == OSP_OK && ferror(f)) status = osp_fail(OSP_ERR_IO, "%s: cannot read", path);
  fclose(f);
  return status;
}

/* The text to tokenize: -p's or the file's. */
static osp_status input_text(const tokenize_arguments *a, char **text, size_t *bytes) {
  if (a->file) return read_text_file(a->file, text, bytes);
  if (!(*text = strdup(a->prompt))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  *bytes = strlen(a->prompt);
  return OSP_OK;
}

/* Prints one text's ids: one per line, or (batch) on one line separated by spaces. */
static osp_status print_ids(const tokenize_arguments *a, const osp_tokenizer *tokenizer, const char *text, size_t bytes,
                            int max_length, bool one_line) {
  int32_t *ids = NULL;
  int count = 0;
  char *clean = NULL;
  osp_status status = a->clean ? osp_prompt_clean(text, bytes, &clean, &bytes) : OSP_OK;
  if (status == OSP_OK) status = osp_tokenizer_encode(tokenizer, clean ? clean : text, bytes, max_length, &ids, &count);
  const int total = status == OSP_OK && a->pad && max_length > count ? max_length : count;
  for (int i = 0; status == OSP_OK && i < total; i++)
    printf("%d%s", i < count ? ids[i] : osp_tokenizer_pad_id(tokenizer), one_line ? (i + 1 < total ? " " : "") : "\n");
  if (status == OSP_OK && one_line) printf("\n");
  free(ids);
  free(clean);
  return status;
}

/* --batch: a JSON string per line, its ids on the line of output with the same number. */
static osp_status tokenize_batch(const tokenize_arguments *a, const osp_tokenizer *tokenizer, int max_length) {
  FILE *f = fopen(a->batch, "r");
  if (!f) return osp_fail(OSP_ERR_IO, "%s: cannot open: %s", a->batch, strerror(errno));
  osp_status status = OSP_OK;
  char *line = NULL;
  size_t capacity = 0;
  for (int number = 1; status == OSP_OK && getline(&line, &capacity, f) > 0; number++) {
    json_error_t error;
    json_t *text = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (!json_is_string(text))
      status = osp_fail(OSP_ERR_FORMAT, "%s: line %d: expected a JSON string", a->batch, number);
    else
      status = print_ids(a, tokenizer, json_string_value(text), json_string_length(text), max_length, true);
    if (status != OSP_OK) osp_fail_context(status, "%s: line %d", a->batch, number);
    json_decref(text);
  }
  free(line);
  fclose(f);
  return status;
}

static osp_status tokenize(const tokenize_arguments *a, int max_length) {
  char *text = NULL;
  size_t bytes = 0;
  osp_tokenizer *tokenizer = NULL;
  osp_status status = osp_tokenizer_load(a->model, &tokenizer);
  if (status == OSP_OK && a->batch) status = tokenize_batch(a, tokenizer, max_length);
  else if (status == OSP_OK) status = input_text(a, &text, &bytes);
  if (status == OSP_OK && !a->batch) status = print_ids(a, tokenizer, text, bytes, max_length, false);
  free(text);
  osp_tokenizer_free(tokenizer);
  return status;
}

int cmd_tokenize(int argc, char **argv) {
  tokenize_arguments a = {0};
  cli_option options[] = {
      {"--model", NULL, "DIR", "a model folder with tokenizer/tokenizer.json, a tokenizer folder, or the "
                               "tokenizer.json file itself", &a.model, NULL},
      {"--prompt", "-p", "TEXT", "the text", &a.prompt, NULL},
      {"--file", NULL, "FILE", "read the text from FILE instead (its bytes as they are)", &a.file, NULL},
      {"--batch", NULL, "FILE", "many texts: one JSON string per line; prints each text's ids on one line, "
                                "separated by spaces", &a.batch, NULL},
      {"--max-length", NULL, "N", "truncate as transformers does with truncation=True: the text's tokens cut so "
                                  "that they and EOS make N", &a.max_length, NULL},
      {"--pad", NULL, NULL, "pad with the pad id up to --max-length, as padding=\"max_length\" does", NULL, &a.pad},
      {"--clean", NULL, NULL, "clean the text first as diffusers' WanPipeline does (html.unescape twice, "
                              "whitespace runs collapsed)", NULL, &a.clean},
      {0},
  };
  cli_command command = {
      .name = "tokenize",
      .usage = "osp tokenize --model DIR (-p TEXT | --file FILE | --batch FILE) [--max-length N [--pad]] [--clean]",
      .summary = "Prints a text's token ids, one per line.",
      .details = "The ids are transformers' tokenizer(text).input_ids for the model's tokenizer.json: the\n"
                 "SentencePiece Unigram model with its normalizer and pre-tokenizer, EOS appended. Text\n"
                 "that is not valid UTF-8 is refused with the byte offset of the first bad character.",
      .options = options,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!a.model) return cli_usage_error(&command, "missing --model DIR");
  if (!!a.prompt + !!a.file + !!a.batch != 1)
    return cli_usage_error(&command, "give exactly one of -p TEXT, --file FILE and --batch FILE");
  long long max_length = 0;
  if (a.max_length && (rc = cli_parse_count(&command, "--max-length", a.max_length, &max_length))) return rc;
  if (a.pad && max_length < 1) return cli_usage_error(&command, "--pad needs --max-length N");
  if (max_length > 1 << 20) return cli_usage_error(&command, "--max-length: expected at most %d", 1 << 20);
  const osp_status status = tokenize(&a, (int)max_length);
  return status == OSP_OK ? CLI_EXIT_OK : cli_failure(status);
}
