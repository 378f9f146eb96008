#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"

void cli_print_help(const cli_command *command, FILE *out) {
  fprintf(out, "usage: %s\n\n%s\n", command->usage, command->summary);
  if (command->details) fprintf(out, "\n%s\n", command->details);
  fprintf(out, "\noptions:\n");
  for (const cli_option *o = command->options; o->name; o++) {
    char left[64];
    snprintf(left, sizeof left, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "", o->name,
             o->metavar ? " " : "", o->metavar ? o->metavar : "");
    fprintf(out, "  %-28s %s\n", left, o->help);
  }
  for (const cli_list_option *o = command->lists; o && o->name; o++) {
    char left[64];
    snprintf(left, sizeof left, "%s %s", o->name, o->metavar);
    fprintf(out, "  %-28s %s\n", left, o->help);
  }
  fprintf(out, "  %-28s %s\n", "-h, --help", "show this help and exit");
}

int cli_usage_error(const cli_command *command, const char *fmt, ...) {
  fprintf(stderr, "osp: error: ");
  va_list args;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fprintf(stderr, " (see 'osp %s --help')\n", command->name);
  return CLI_EXIT_USAGE;
}

int cli_failure(osp_status status) {
  fprintf(stderr, "osp: error: %s\n", osp_last_error());
  return status == OSP_OK ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

static cli_list_option *find_list_option(const cli_command *command, const char *arg) {
  for (cli_list_option *o = command->lists; o && o->name; o++)
    if (!strcmp(arg, o->name)) return o;
  return NULL;
}

/* Appends the value of a repeatable option. */
static int append(const cli_command *command, const cli_list_option *o, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) return cli_usage_error(command, "%s needs a value (%s)", o->name, o->metavar);
  if (o->list->count == CLI_LIST_MAX) return cli_usage_error(command, "%s: at most %d", o->name, CLI_LIST_MAX);
  o->list->items[o->list->count++] = argv[++*i];
  return CLI_EXIT_OK;
}

static cli_option *find_option(const cli_command *command, const char *arg) {
  for (cli_option *o = command->options; o->name; o++)
    if (!strcmp(arg, o->name) || (o->alias && !strcmp(arg, o->alias))) return o;
  return NULL;
}

int cli_parse(const cli_command *command, int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      cli_print_help(command, stdout);
      return -1;
    }
    const cli_list_option *repeatable = find_list_option(command, arg);
    if (repeatable) {
      const int rc = append(command, repeatable, argc, argv, &i);
      if (rc) return rc;
      continue;
    }
    cli_option *o = find_option(command, arg);
    if (!o && arg[0] != '-' && command->operand && !*command->operand) {
      *command->operand = arg;
      continue;
    }
    if (!o) return cli_usage_error(command, "unknown %s '%s'", arg[0] == '-' ? "option" : "argument", arg);
    if (!o->metavar) {
      *o->flag = 1;
      continue;
    }
    if (i + 1 >= argc) return cli_usage_error(command, "%s needs a value (%s)", o->name, o->metavar);
    *o->value = argv[++i];
  }
  return CLI_EXIT_OK;
}

int cli_parse_count(const cli_command *command, const char *option, const char *text, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || v < 0)
    return cli_usage_error(command, "%s expects a non-negative integer, found '%s'", option, text);
  *out = v;
  return CLI_EXIT_OK;
}

osp_status cli_parse_device(const char *name, osp_device fallback, osp_device *device) {
  if (!name) *device = fallback;
  else if (!strcmp(name, "cpu")) *device = OSP_CPU;
  else if (!strcmp(name, "cuda")) *device = OSP_CUDA;
  else return osp_fail(OSP_ERR_ARGUMENT, "--device expects cpu or cuda, found '%s'", name);
  return OSP_OK;
}

osp_status cli_lora_specs(const cli_list *list, osp_lora_spec *specs) {
  for (int i = 0; i < list->count; i++) OSP_TRY(osp_lora_spec_parse(list->items[i], &specs[i]));
  return OSP_OK;
}

osp_status cli_dit_config(const char *config_path, const char *preset, const char *weights, osp_model_config *config) {
  if (config_path) return osp_config_load(config_path, config);
  if (preset) return osp_config_preset(preset, config);
  char *copy = strdup(weights);
  if (!copy) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  char beside[4096];
  snprintf(beside, sizeof beside, "%s/config.json", dirname(copy));
  free(copy);
  if (access(beside, R_OK) != 0)
    return osp_fail(OSP_ERR_ARGUMENT, "no model config: give --config C.json or --preset NAME "
                    "(no %s beside the weights)", beside);
  return osp_config_load(beside, config);
}
