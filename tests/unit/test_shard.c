/* Splitting layouts over ranks (parallel/shard.h) and moving tokens between splits
 * (parallel/redistribute.h), with S ranks simulated in one process: the all-to-all is done by hand
 * from every rank's pack table, and the result must be the serial layout change of the plan. */
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "harness.h"
#include "parallel/redistribute.h"
#include "sparse/plan.h"

/* Every slot is owned once; each rank's tokens fill its [rows, tokens]; order and local agree. */
static void check_shard(const osp_shard *s) {
  const int64_t slots = s->layout.rows * s->layout.tokens;
  const int32_t *order = s->order.data, *owner = s->owner.data, *local = s->local.data;
  int64_t total = 0;
  for (int q = 0; q < s->ranks; q++) {
    CHECK(s->start[q] == total);
    CHECK(s->tokens[q] > 0);
    total += s->rows[q] * s->tokens[q];
  }
  CHECK(total == slots);
  int ok = 1;
  for (int64_t j = 0; j < slots; j++) {
    const int32_t i = order[j];
    ok &= owner[i] >= 0 && owner[i] < s->ranks && s->start[owner[i]] + local[i] == j;
  }
  CHECK(ok);
  /* A rank's rows are whole rows of the serial layout (rows split) or every row (bands), and
   * each row contributes tokens[q] consecutive local slots. */
  ok = 1;
  for (int q = 0; q < s->ranks; q++)
    for (int64_t j = 0; j < s->rows[q] * s->tokens[q]; j++) {
      const int64_t row = order[s->start[q] + j] / s->layout.tokens;
      const int64_t first_row = order[s->start[q]] / s->layout.tokens;
      ok &= row == first_row + j / s->tokens[q];
    }
  CHECK(ok);
}

/* Moves a tensor holding each slot's serial index (its value) from split `from` to split `to`
 * on every simulated rank, and checks each destination slot got gather[slot] (or 0 for −1). */
static void check_redistribution(const osp_shard *from, const osp_shard *to, const osp_tensor *gather,
                                 osp_arena *arena, int expect_local /* −1: either */) {
  const int S = to->ranks;
  osp_redistribution r[OSP_MAX_RANKS];
  int all_local = 1;
  for (int q = 0; q < S; q++) {
    CHECK(osp_redistribution_plan(from, to, gather, q, arena, &r[q]) == OSP_OK);
    all_local &= r[q].local_only;
  }
  if (expect_local >= 0) CHECK(all_local == expect_local);
  /* sent[q][p]: the values rank q sends p (each value: the serial slot of `from` it came from,
   * plus 1 so that zero means a padding row). */
  int ok = 1;
  for (int p = 0; p < S; p++) {
    const int64_t n = to->rows[p] * to->tokens[p];
    float *received = calloc((size_t)r[p].total_recv + 1, sizeof(float));
    int64_t at = 0;
    for (int q = 0; q < S && !all_local; q++) {
      int64_t first = 0; /* rank q's rows for p start after those for ranks before p */
      for (int d = 0; d < p; d++) first += r[q].send_rows[d];
      const int32_t *pack = r[q].pack.data;
      for (int64_t k = 0; k < r[q].send_rows[p]; k++)
        received[at++] = (float)(((const int32_t *)from->order.data)[from->start[q] + pack[first + k]] + 1);
      ok &= r[p].recv_rows[q] == r[q].send_rows[p];
    }
    const int32_t *index = all_local ? r[p].local_gather.data : r[p].unpack.data;
    for (int64_t j = 0; j < n; j++) {
      const int32_t slot = ((const int32_t *)to->order.data)[to->start[p] + j];
      const int32_t want = gather ? ((const int32_t *)gather->data)[slot] : slot;
      float got;
      if (index[j] < 0) got = 0;
      else if (all_local) got = (float)(((const int32_t *)from->order.data)[from->start[p] + index[j]] + 1);
      else got = received[index[j]];
      ok &= got == (float)(want + 1) || (want < 0 && got == 0);
    }
    free(received);
  }
  CHECK(ok);
}

static void check_schedule(const char *schedule, int64_t batch, const int64_t grid[3], int ranks) {
  osp_model_config cfg;
  CHECK(osp_config_preset("wan2.1-t2v-1.3b", &cfg) == OSP_OK);
  cfg.num_layers = cfg.num_full_blocks = 8; /* the preset all full, on 8 blocks */
  CHECK(osp_config_set_schedule("test", schedule, &cfg) == OSP_OK);
  CHECK(osp_config_set_sparse_ratio("test", 2, &cfg) == OSP_OK);
  osp_arena arena;
  CHECK(osp_arena_init(&arena, "test", 64 << 20) == OSP_OK);
  osp_sparse_plan plan;
  CHECK(osp_sparse_plan_make(&cfg, batch, grid, &arena, &plan) == OSP_OK);
  osp_shard bands[OSP_PATTERN_COUNT], rows[OSP_PATTERN_COUNT], lines;
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    if (!plan.used[k]) continue;
    CHECK(osp_shard_bands(&plan.layout[k], ranks, 4, &arena, &bands[k]) == OSP_OK);
    check_shard(&bands[k]);
    if (k == OSP_PATTERN_FULL) continue;
    CHECK(osp_shard_rows(&plan.layout[k], ranks, &arena, &rows[k]) == OSP_OK);
    check_shard(&rows[k]);
  }
  CHECK(osp_shard_bands(&plan.layout[OSP_PATTERN_FULL], ranks, 1, &arena, &lines) == OSP_OK);
  check_shard(&lines);
  for (int from = 0; from < OSP_PATTERN_COUNT; from++)
    for (int to = 0; to < OSP_PATTERN_COUNT; to++) {
      if (!plan.gather[from][to].ndim) continue;
      /* Ulysses: bands of P² lines keep every layout change on its rank. */
      check_redistribution(&bands[from], &bands[to], &plan.gather[from][to], &arena, 1);
      /* SSP: natural lines in, whole subsequences inside the span. */
      const osp_shard *a = from == OSP_PATTERN_FULL ? &lines : &rows[from];
      const osp_shard *b = to == OSP_PATTERN_FULL ? &lines : &rows[to];
      check_redistribution(a, b, &plan.gather[from][to], &arena, 0);
    }
  /* The same layout between two splits (no serial change): a pure redistribution (local where the
   * two splits happen to agree). */
  check_redistribution(&lines, &bands[OSP_PATTERN_FULL], NULL, &arena, -1);
  osp_arena_free(&arena);
}

static void check_refusals(void) {
  osp_arena arena;
  CHECK(osp_arena_init(&arena, "test", 1 << 20) == OSP_OK);
  const osp_layout token = osp_layout_make(OSP_PATTERN_TOKEN, 2, 1, (int64_t[]){1, 4, 4});
  osp_shard s;
  CHECK(osp_shard_rows(&token, 3, &arena, &s) == OSP_ERR_SHAPE); /* 3 ranks, 4 subsequences */
  CHECK(strstr(osp_last_error(), "must divide") != NULL);
  CHECK(osp_shard_bands(&token, 2, 4, &arena, &s) == OSP_ERR_SHAPE); /* one band of 4 lines */
  CHECK(strstr(osp_last_error(), "only 1 such units") != NULL);
  CHECK(osp_shard_bands(&token, 1, 2, &arena, &s) == OSP_ERR_ARGUMENT); /* not a multiple of P² */
  osp_arena_free(&arena);
}

int main(void) {
  check_schedule("full,full,token,group,token,group,full,full", 1, (int64_t[]){3, 5, 7}, 2);
  check_schedule("full,full,token,group,token,group,full,full", 2, (int64_t[]){3, 5, 7}, 4);
  check_schedule("full,token,group,full,token,group,full,token", 1, (int64_t[]){4, 4, 8}, 4);
  check_schedule("full,token,group,token,group,token,group,full", 2, (int64_t[]){2, 9, 6}, 4);
  check_refusals();
  return test_summary("shard");
}
