/* Command-line plumbing shared by the `osp` subcommands: option tables, parsing, usage text, and
 * the one place that turns an osp_status into a message and an exit code. */
#ifndef OSP_TOOLS_CLI_H
#define OSP_TOOLS_CLI_H

#include <stdio.h>

#include "core/config.h"
#include "core/tensor.h"
#include "model/lora.h"
#include "osp.h"

/* The values of a repeatable option, in order. */
enum { CLI_LIST_MAX = 16 };
typedef struct {
  const char *items[CLI_LIST_MAX];
  int count;
} cli_list;

typedef struct {
  const char *name;    /* "--weights" */
  const char *alias;   /* "-o", or NULL */
  const char *metavar; /* "FILE"; NULL for a flag without a value */
  const char *help;
  const char **value;  /* set to the argument (options with a metavar) */
  int *flag;           /* set to 1 (flags) */
} cli_option;

/* An option that may be given more than once, each argument appended to its list. */
typedef struct {
  const char *name;    /* "--lora" */
  const char *metavar; /* "FILE[:SCALE]" */
  const char *help;
  cli_list *list;
} cli_list_option;

typedef struct {
  const char *name;     /* "dit" */
  const char *usage;    /* "osp dit --weights W.safetensors ..." */
  const char *summary;  /* one line for `osp --help` */
  const char *details;  /* paragraphs after the usage line, or NULL */
  cli_option *options;  /* terminated by an entry with name NULL */
  cli_list_option *lists; /* the repeatable ones, terminated likewise; or NULL */
  const char **operand; /* where the one positional argument goes, or NULL if none is taken */
} cli_command;

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

/* Parses argv (after the subcommand) into the command's options. Returns CLI_EXIT_OK to go on,
 * or -1 after printing help (the caller exits 0), or CLI_EXIT_USAGE after printing an error. */
int cli_parse(const cli_command *command, int argc, char **argv);
void cli_print_help(const cli_command *command, FILE *out);

/* A usage error: prints "osp: error: <message>" and a hint, returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_command *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failed operation: prints "osp: error: <osp_last_error()>", returns CLI_EXIT_FAILURE. */
int cli_failure(osp_status status);

/* A --device value: "cpu" or "cuda"; NULL gives `fallback`. */
osp_status cli_parse_device(const char *name, osp_device fallback, osp_device *device);

/* Parses a non-negative integer option value; a usage error names the option otherwise. */
int cli_parse_count(const cli_command *command, const char *option, const char *text, long long *out);

/* The DiT's config: `config_path`, else the preset, else config.json beside the weights. */
osp_status cli_dit_config(const char *config_path, const char *preset, const char *weights, osp_model_config *config);

/* The --lora option, repeatable, and its values as LoRA specs (specs: room for CLI_LIST_MAX). */
#define CLI_LORA_METAVAR "FILE[:SCALE]"
#define CLI_LORA_HELP                                                                                       \
  "merge a LoRA (safetensors: diffusers/PEFT, original Wan, ComfyUI or musubi-tuner names) into the DiT's "   \
  "weights: W + SCALE·(α/r)·B·A, SCALE 1 by default; repeatable, applied in order"
osp_status cli_lora_specs(const cli_list *list, osp_lora_spec *specs);

#endif
