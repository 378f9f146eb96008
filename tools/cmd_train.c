/* osp train: a training run from train.json, with a progress line and a JSONL log of metrics. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ranks.h"
#include "commands.h"
#include "core/files.h"
#include "core/status.h"
#include "pipeline/train.h"

typedef struct {
  FILE *log;      /* <output>/metrics.jsonl, appended */
  int progress;   /* a progress line on stderr (a terminal), else one line per step */
  double elapsed; /* seconds of the steps so far in this process */
  int64_t taken;  /* steps taken in this process */
} reporter;

/* "1h02m03s" */
static void format_duration(double seconds, char *out, size_t size) {
  long s = seconds > 0 ? (long)(seconds + 0.5) : 0;
  if (s >= 3600) snprintf(out, size, "%ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
  else snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
}

static void report(const osp_train_metrics *m, void *user) {
  reporter *r = user;
  r->elapsed += m->seconds;
  r->taken++;
  char eta[32];
  format_duration(r->elapsed / (double)r->taken * (double)(m->steps - m->step), eta, sizeof eta);
  fprintf(stderr, "%sstep %lld/%lld  loss %.5f  lr %.2e  |g| %.3g  %.0f tokens/s  ETA %s%s",
          r->progress ? "\r" : "", (long long)m->step, (long long)m->steps, m->loss, m->lr, m->grad_norm,
          m->tokens_per_second, eta, r->progress ? "\033[K" : "\n");
  if (m->checkpoint) fprintf(stderr, "%scheckpoint: %s\n", r->progress ? "\n" : "", m->checkpoint);
  if (m->step == m->steps && r->progress) fputc('\n', stderr);
  fprintf(r->log, "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"seconds\": %.6f, "
          "\"tokens_per_second\": %.3f%s%s%s}\n", (long long)m->step, m->loss, m->lr, m->grad_norm, m->seconds,
          m->tokens_per_second, m->checkpoint ? ", \"checkpoint\": \"" : "", m->checkpoint ? m->checkpoint : "",
          m->checkpoint ? "\"" : "");
  fflush(r->log);
}

static osp_status open_log(const osp_train_config *config, reporter *r) {
  char path[OSP_PATH_BYTES + 32];
  OSP_TRY(osp_make_folders(config->output));
  snprintf(path, sizeof path, "%s/metrics.jsonl", config->output);
  r->log = fopen(path, "a");
  if (!r->log) return osp_fail(OSP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  return OSP_OK;
}

int cmd_train(int argc, char **argv) {
  const char *config_path = NULL, *resume = NULL, *sp = NULL;
  cli_option options[] = {
      {"--config", NULL, "train.json", "the run: model, data, optimizer, steps, output (docs/training.md)", &config_path, NULL},
      {"--resume", NULL, "latest|DIR", "go on from a checkpoint: the newest under the output folder, or the "
                                       "folder given", &resume, NULL},
      {"--sp", NULL, "ulysses|ssp", "under mpirun -np N: the ranks share each sample's tokens (default ssp in "
                                    "Skiparse blocks; full blocks run Ulysses); rank 0 logs and checkpoints", &sp, NULL},
      {0},
  };
  cli_command command = {
      .name = "train",
      .usage = "osp train --config train.json [--resume latest|DIR]",
      .summary = "Trains or fine-tunes the DiT with flow matching and AdamW.",
      .details = "Each step draws noise and a timestep (keyed by the seed and the step), runs the DiT\n"
                 "forward and its hand-written backward, clips the gradients and takes an AdamW step.\n"
                 "Progress goes to stderr; every step's metrics are appended to <output>/metrics.jsonl;\n"
                 "checkpoints go to <output>/step-<k>/ (weights, optimizer state, step and data position),\n"
                 "written under a temporary name and renamed, so a crash leaves the previous one whole.\n"
                 "A resumed run continues bit for bit as the uninterrupted one would have, on the same\n"
                 "device. \"device\": \"cuda\" keeps f32 master weights and AdamW on the GPU and runs the\n"
                 "forward and backward in bf16. Under mpirun -np N (--sp) the ranks share every sample's\n"
                 "tokens and sum their gradients; rank 0 writes the log and the checkpoints.",
      .options = options,
  };
  int rc = cli_parse(&command, argc, argv);
  if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
  if (!config_path) return cli_usage_error(&command, "missing --config train.json");
  osp_train_config config;
  cli_ranks ranks = {0};
  osp_status status = osp_train_config_load(config_path, &config);
  if (status == OSP_OK) status = cli_ranks_start(sp, false, config.device, &ranks);
  reporter r = {.progress = isatty(STDERR_FILENO)};
  if (status == OSP_OK && ranks.rank == 0) status = open_log(&config, &r);
  const osp_train_ranks over = {.sequence = ranks.split.sequence, .mode = ranks.split.mode, .writes = ranks.rank == 0};
  if (status == OSP_OK) status = osp_train_over(&config, &over, resume, ranks.rank == 0 ? report : NULL, &r);
  if (r.log) fclose(r.log);
  rc = status == OSP_OK ? CLI_EXIT_OK : cli_ranks_failure(&ranks, status);
  cli_ranks_finish(&ranks);
  return rc;
}
