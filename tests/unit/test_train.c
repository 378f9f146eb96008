/* Training end to end on the CPU (src/pipeline/train.h, checkpoint.h; src/model/dit_train.h):
 *   - the loss goes down: a tiny DiT overfits one fixed noisy batch (the backward and AdamW
 *     together), and `osp_train` on a small synthetic set lowers its loss;
 *   - activation checkpointing changes nothing: the same gradients, bit for bit;
 *   - resume is bit-identical: a run resumed from its step-k checkpoint ends with the same weights,
 *     optimizer state and EMA of the weights as the uninterrupted run;
 *   - a kill -9 during a checkpoint write leaves the previous checkpoint the newest, and loadable;
 *   - bad train.json files get messages naming the file and the key. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/status.h"
#include "harness.h"
#include "model/dit_train.h"
#include "ops/ops.h"
#include "ops/optim.h"
#include "pipeline/checkpoint.h"
#include "pipeline/train.h"

static char temp_dir[] = "/tmp/osp_test_train_XXXXXX";

static const char model_json[] =
    "{\"_class_name\": \"WanTransformer3DModel\", \"patch_size\": [1, 2, 2], \"num_attention_heads\": 2,\n"
    " \"attention_head_dim\": 16, \"in_channels\": 16, \"out_channels\": 16, \"text_dim\": 32, \"freq_dim\": 64,\n"
    " \"ffn_dim\": 64, \"num_layers\": 3, \"cross_attn_norm\": true, \"qk_norm\": \"rms_norm_across_heads\",\n"
    " \"eps\": 1e-06}\n";

static void write_text(const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", temp_dir, name);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* A train.json in the temp folder with `extra` keys, output folder `output`. */
static void write_train_json(const char *name, const char *output, int steps, const char *extra) {
  char text[2048];
  snprintf(text, sizeof text,
           "{\"model\": {\"config\": \"model.json\", \"random_weights_seed\": 1, \"schedule\": \"full,token,group\","
           " \"sparse_ratio\": 2},\n \"data\": {\"synthetic\": {\"samples\": 3, \"frames\": 2, \"height\": 10,"
           " \"width\": 8, \"text_rows\": 5}},\n \"batch_size\": 2, \"steps\": %d, \"seed\": 7, \"output\": \"%s\",\n"
           " \"optimizer\": {\"lr\": 0.003, \"weight_decay\": 0.01, \"clip_grad_norm\": 1.0},\n"
           " \"lr_schedule\": {\"kind\": \"cosine\", \"warmup_steps\": 2}%s}\n",
           steps, output, extra);
  write_text(name, text);
}

static osp_status load_train_json(const char *name, osp_train_config *config) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", temp_dir, name);
  return osp_train_config_load(path, config);
}

typedef struct {
  double first, last;
} loss_record;

static void record_loss(const osp_train_metrics *m, void *user) {
  loss_record *r = user;
  if (m->step == 1) r->first = m->loss;
  r->last = m->loss;
}

/* Whole files equal, byte for byte. */
static int same_file(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    same = ca == cb;
    if (ca == EOF || cb == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

/* The backward and AdamW together: one fixed batch, 120 steps, loss below 5% of the first. */
static void test_overfit_fixed_batch(void) {
  osp_model_config config;
  char path[512];
  snprintf(path, sizeof path, "%s/model.json", temp_dir);
  CHECK(osp_config_load(path, &config) == OSP_OK);
  osp_dit dit, grads, m, v;
  CHECK(osp_dit_init_random(&config, 3, OSP_CPU, &dit) == OSP_OK);
  CHECK(osp_dit_init_zeros(&dit, OSP_CPU, &grads) == OSP_OK);
  CHECK(osp_dit_init_zeros(&dit, OSP_CPU, &m) == OSP_OK);
  CHECK(osp_dit_init_zeros(&dit, OSP_CPU, &v) == OSP_OK);
  enum { B = 1, C = 16, F = 2, H = 4, W = 6, L = 3, N = B * C * F * H * W };
  static float x[N], target[N], velocity[N], dv[N], text[B * L * 32], time[B] = {600.0f};
  osp_randn(1, 1, 0, x, N);
  osp_randn(1, 2, 0, target, N);
  osp_randn(1, 3, 0, text, B * L * 32);
  osp_tensor tx = osp_tensor_make(x, OSP_F32, OSP_CPU, 5, (int64_t[]){B, C, F, H, W});
  osp_tensor tv = osp_tensor_make(velocity, OSP_F32, OSP_CPU, 5, tx.shape);
  osp_tensor tdv = osp_tensor_make(dv, OSP_F32, OSP_CPU, 5, tx.shape);
  osp_tensor tt = osp_tensor_make(time, OSP_F32, OSP_CPU, 1, (int64_t[]){B});
  osp_tensor tc = osp_tensor_make(text, OSP_F32, OSP_CPU, 3, (int64_t[]){B, L, 32});
  osp_dit_tape *tape = NULL;
  const osp_dit_tape_options options = {.batch = B, .frames = F, .height = H, .width = W, .text_rows = L};
  CHECK(osp_dit_tape_create(&dit, &options, &tape) == OSP_OK);
  osp_dit_parameter *p[4];
  int count = 0;
  osp_dit *dits[4] = {&dit, &grads, &m, &v};
  for (int i = 0; i < 4; i++) CHECK(osp_dit_parameters(dits[i], &p[i], &count) == OSP_OK);
  double first = 0, loss = 0;
  for (int step = 1; step <= 120; step++) {
    osp_status s = osp_dit_forward_train(&dit, tape, &tx, &tt, &tc, &tv);
    double sum = 0;
    for (int i = 0; i < N; i++) {
      const double d = (double)velocity[i] - target[i];
      sum += d * d;
      dv[i] = (float)(2.0 * d / N);
    }
    loss = sum / N;
    if (step == 1) first = loss;
    for (int i = 0; i < count && s == OSP_OK; i++) s = osp_zero(&p[1][i].tensor);
    if (s == OSP_OK) s = osp_dit_backward(&dit, tape, &tdv, &grads, NULL);
    const osp_adamw_config adamw = {.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .step = step};
    for (int i = 0; i < count && s == OSP_OK; i++)
      s = osp_adamw_step(&p[0][i].tensor, &p[1][i].tensor, &p[2][i].tensor, &p[3][i].tensor, &adamw);
    if (s != OSP_OK) {
      CHECK(!"training step failed");
      fprintf(stderr, "%s\n", osp_last_error());
      break;
    }
  }
  printf("overfit one batch: loss %.4f -> %.5f after 120 steps (%.2f%%)\n", first, loss, 100 * loss / first);
  CHECK(loss < 0.05 * first);
  for (int i = 0; i < 4; i++) free(p[i]);
  osp_dit_tape_free(tape);
  for (int i = 0; i < 4; i++) osp_dit_free(dits[i]);
}

/* Checkpointed and stored tapes give the same bits, on a schedule that changes layout. */
static void test_checkpointing_changes_nothing(void) {
  osp_train_config config;
  CHECK(load_train_json("ckpt.json", &config) == OSP_OK);
  osp_dit dit, g[2];
  CHECK(osp_dit_init_random(&config.model, 5, OSP_CPU, &dit) == OSP_OK);
  enum { N = 2 * 16 * 2 * 10 * 8 };
  static float x[N], velocity[2][N], dv[N], dx[2][N], text[2 * 5 * 32], time[2] = {100.0f, 900.0f};
  osp_randn(2, 1, 0, x, N);
  osp_randn(2, 2, 0, dv, N);
  osp_randn(2, 3, 0, text, 2 * 5 * 32);
  const int64_t shape[5] = {2, 16, 2, 10, 8};
  osp_tensor tx = osp_tensor_make(x, OSP_F32, OSP_CPU, 5, shape), tdv = osp_tensor_make(dv, OSP_F32, OSP_CPU, 5, shape);
  osp_tensor tt = osp_tensor_make(time, OSP_F32, OSP_CPU, 1, (int64_t[]){2});
  osp_tensor tc = osp_tensor_make(text, OSP_F32, OSP_CPU, 3, (int64_t[]){2, 5, 32});
  for (int k = 0; k < 2; k++) {
    const osp_dit_tape_options options = {.batch = 2, .frames = 2, .height = 10, .width = 8, .text_rows = 5,
                                          .checkpoint = k == 1};
    osp_dit_tape *tape = NULL;
    osp_tensor tv = osp_tensor_make(velocity[k], OSP_F32, OSP_CPU, 5, shape);
    osp_tensor tdx = osp_tensor_make(dx[k], OSP_F32, OSP_CPU, 5, shape);
    CHECK(osp_dit_init_zeros(&dit, OSP_CPU, &g[k]) == OSP_OK);
    CHECK(osp_dit_tape_create(&dit, &options, &tape) == OSP_OK);
    CHECK(osp_dit_forward_train(&dit, tape, &tx, &tt, &tc, &tv) == OSP_OK);
    CHECK(osp_dit_backward(&dit, tape, &tdv, &g[k], &tdx) == OSP_OK);
    osp_dit_tape_free(tape);
  }
  CHECK(!memcmp(velocity[0], velocity[1], sizeof velocity[0]));
  CHECK(!memcmp(dx[0], dx[1], sizeof dx[0]));
  osp_dit_parameter *p0, *p1;
  int count;
  CHECK(osp_dit_parameters(&g[0], &p0, &count) == OSP_OK);
  CHECK(osp_dit_parameters(&g[1], &p1, &count) == OSP_OK);
  int same = 1;
  for (int i = 0; i < count; i++) same &= !memcmp(p0[i].tensor.data, p1[i].tensor.data, osp_tensor_bytes(&p0[i].tensor));
  CHECK(same);
  free(p0);
  free(p1);
  for (int k = 0; k < 2; k++) osp_dit_free(&g[k]);
  osp_dit_free(&dit);
}

/* osp_train lowers the loss; the run resumed from step 4 ends where the uninterrupted one does. */
static void test_train_and_resume(void) {
  osp_train_config full, resumed;
  loss_record record = {0};
  CHECK(load_train_json("full.json", &full) == OSP_OK);
  CHECK(osp_train(&full, NULL, record_loss, &record) == OSP_OK);
  printf("osp_train: loss %.4f at step 1, %.4f at step %lld\n", record.first, record.last, (long long)full.steps);
  CHECK(record.last < 0.85 * record.first);
  char from[1024], to[1024], a[1100], b[1100];
  snprintf(from, sizeof from, "%s/full/step-4", temp_dir);
  snprintf(to, sizeof to, "%s/resumed", temp_dir);
  mkdir(to, 0777);
  snprintf(to, sizeof to, "%s/resumed/step-4", temp_dir);
  mkdir(to, 0777);
  const char *files[] = {"weights.safetensors", "optimizer.safetensors", "ema.safetensors", "state.json"};
  for (int i = 0; i < 4; i++) { /* the checkpoint copied as if the run had stopped after step 4 */
    snprintf(a, sizeof a, "%s/%s", from, files[i]);
    snprintf(b, sizeof b, "%s/%s", to, files[i]);
    FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
    for (int c; in && out && (c = fgetc(in)) != EOF;) fputc(c, out);
    if (in) fclose(in);
    if (out) fclose(out);
  }
  CHECK(load_train_json("resumed.json", &resumed) == OSP_OK);
  CHECK(osp_train(&resumed, "latest", NULL, NULL) == OSP_OK);
  snprintf(a, sizeof a, "%s/full/step-12/weights.safetensors", temp_dir);
  snprintf(b, sizeof b, "%s/full/step-12/ema.safetensors", temp_dir);
  CHECK(!same_file(a, b)); /* the EMA (decay 0.9) trails the weights */
  for (int i = 0; i < 4; i++) {
    snprintf(a, sizeof a, "%s/full/step-12/%s", temp_dir, files[i]);
    snprintf(b, sizeof b, "%s/resumed/step-12/%s", temp_dir, files[i]);
    CHECK(same_file(a, b));
  }
}

/* A child writes checkpoints over and over and is killed at once with SIGKILL at some moment:
 * every time, the newest complete checkpoint loads. */
static void test_kill_during_checkpoint(void) {
  osp_train_config config;
  CHECK(load_train_json("full.json", &config) == OSP_OK);
  osp_dit w, m, v;
  CHECK(osp_dit_init_random(&config.model, 1, OSP_CPU, &w) == OSP_OK);
  CHECK(osp_dit_init_zeros(&w, OSP_CPU, &m) == OSP_OK);
  CHECK(osp_dit_init_zeros(&w, OSP_CPU, &v) == OSP_OK);
  osp_train_tensors tensors = {&w, &m, &v, NULL};
  char output[1024], path[1200];
  snprintf(output, sizeof output, "%s/killed", temp_dir);
  osp_train_state state = {.step = 1};
  CHECK(osp_checkpoint_save(output, &tensors, &state, path, sizeof path) == OSP_OK);
  int loadable = 0;
  for (int round = 0; round < 12; round++) {
    pid_t child = fork();
    if (child == 0) {
      for (int64_t step = 2 + 1000 * round;; step++) {
        osp_train_state s = {.step = step};
        char p[1200];
        osp_checkpoint_save(output, &tensors, &s, p, sizeof p);
      }
    }
    nanosleep(&(struct timespec){.tv_nsec = 2000000L + 1500000L * round}, NULL);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    osp_train_state got;
    loadable += osp_checkpoint_latest(output, path, sizeof path) == OSP_OK && path[0] &&
                osp_checkpoint_load(path, &tensors, &got) == OSP_OK;
  }
  CHECK(loadable == 12);
  osp_dit_free(&w);
  osp_dit_free(&m);
  osp_dit_free(&v);
}

/* The message of a bad train.json names the file and the key. */
static void expect_config_error(const char *text, const char *key) {
  write_text("bad.json", text);
  osp_train_config config;
  const int failed = load_train_json("bad.json", &config) != OSP_OK;
  CHECK(failed && strstr(osp_last_error(), "bad.json") && strstr(osp_last_error(), key));
  if (failed && !strstr(osp_last_error(), key)) fprintf(stderr, "  message: %s\n", osp_last_error());
}

static void test_config_errors(void) {
  expect_config_error("{\"data\": {\"synthetic\": {}}, \"output\": \"o\"}", "model");
  expect_config_error("{\"model\": {\"preset\": \"wan2.1-t2v-1.3b\"}, \"output\": \"o\"}", "data");
  expect_config_error("{\"model\": {\"preset\": \"wan2.1-t2v-1.3b\"}, \"data\": {\"synthetic\": {}}, "
                      "\"output\": \"o\", \"stesp\": 3}", "stesp");
  expect_config_error("{\"model\": {\"preset\": \"wan2.1-t2v-1.3b\"}, \"data\": {\"synthetic\": {}}, "
                      "\"output\": \"o\", \"optimizer\": {\"betas\": [0.9, 1.5]}}", "optimizer.betas");
  expect_config_error("{\"model\": {\"preset\": \"wan2.1-t2v-1.3b\"}, \"data\": {\"synthetic\": {}}, "
                      "\"output\": \"o\", \"timesteps\": {\"shift\": -2}}", "timesteps.shift");
  expect_config_error("{\"model\": {\"preset\": \"wan2.1-t2v-1.3b\"}, \"data\": {\"synthetic\": {}}, "
                      "\"output\": \"o\", \"batch_size\": 0}", "batch_size");
  expect_config_error("{\"model\": {\"preset\": \"wan2.1-t2v-1.3b\"}, \"data\": {\"synthetic\": {}}}", "output");
}

int main(void) {
  if (!mkdtemp(temp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  write_text("model.json", model_json);
  write_train_json("resumed.json", "resumed", 12, ", \"ema_decay\": 0.9");
  write_train_json("ckpt.json", "ckpt", 4, "");
  write_train_json("full.json", "full", 12, ", \"checkpoint_every\": 4, \"ema_decay\": 0.9");
  test_overfit_fixed_batch();
  test_checkpointing_changes_nothing();
  test_train_and_resume();
  test_kill_during_checkpoint();
  test_config_errors();
  char command[256];
  snprintf(command, sizeof command, "rm -rf %s", temp_dir);
  if (system(command) != 0) fprintf(stderr, "could not remove %s\n", temp_dir);
  return test_summary("train");
}
