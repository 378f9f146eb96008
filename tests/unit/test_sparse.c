/* Skiparse-2D layouts and plans: the worked example of PAPER.md 5.6, the layout algebra (every
 * layout a bijection, the switch an involution, token∘switch = group, enter∘leave = identity), and
 * sparse attention through the plan against full attention in natural order under the block mask
 * the pattern implies, with the mask built here from the subsequence formulas alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/status.h"
#include "harness.h"
#include "ops/ops.h"
#include "sparse/plan.h"

/* A plan of the schedule `patterns` (count blocks), its tables in `arena`. */
static osp_status make_plan(const osp_pattern *patterns, int count, int ratio, int64_t batch, const int64_t grid[3],
                            osp_arena *arena, osp_sparse_plan *plan) {
  osp_model_config cfg = {.num_layers = count, .sparse_ratio = ratio};
  for (int i = 0; i < count; i++) cfg.schedule[i] = (unsigned char)patterns[i];
  osp_arena measure = osp_arena_measuring("plan");
  OSP_TRY(osp_sparse_plan_make(&cfg, batch, grid, &measure, plan));
  OSP_TRY(osp_arena_init(arena, "plan", measure.peak));
  return osp_sparse_plan_make(&cfg, batch, grid, arena, plan);
}

/* n = 4y + x of the tokens of each subsequence, in order (PAPER.md 5.6). */
static void test_worked_example(void) {
  const int64_t grid[3] = {1, 4, 4};
  static const int token[4][4] = {{0, 2, 8, 10}, {1, 3, 9, 11}, {4, 6, 12, 14}, {5, 7, 13, 15}};
  static const int group[4][4] = {{0, 1, 4, 5}, {2, 3, 6, 7}, {8, 9, 12, 13}, {10, 11, 14, 15}};
  osp_layout t = osp_layout_make(OSP_PATTERN_TOKEN, 2, 1, grid), g = osp_layout_make(OSP_PATTERN_GROUP, 2, 1, grid);
  CHECK(t.rows == 4 && t.tokens == 4 && g.rows == 4 && g.tokens == 4);
  for (int s = 0; s < 4; s++)
    for (int i = 0; i < 4; i++) {
      osp_grid_point pt = osp_layout_point(&t, s * 4 + i), pg = osp_layout_point(&g, s * 4 + i);
      CHECK(pt.y * 4 + pt.x == token[s][i]);
      CHECK(pg.y * 4 + pg.x == group[s][i]);
    }
  /* On 8×8, group subsequence 0 is row-major over rows and columns {0, 1, 4, 5}. */
  const int64_t grid8[3] = {1, 8, 8};
  osp_layout g8 = osp_layout_make(OSP_PATTERN_GROUP, 2, 1, grid8);
  static const int visit[4] = {0, 1, 4, 5};
  for (int i = 0; i < 16; i++) {
    osp_grid_point p = osp_layout_point(&g8, i);
    CHECK(p.y == visit[i / 4] && p.x == visit[i % 4]);
  }
}

static const int32_t *table(const osp_sparse_plan *plan, osp_pattern from, osp_pattern to) {
  return plan->gather[from][to].data;
}

/* Every slot maps to a grid point and back; the switch is its own inverse; natural → token → group
 * equals natural → group; token → group → natural is the identity on real tokens. */
static void test_algebra(int ratio, int64_t batch, int64_t T, int64_t H, int64_t W) {
  const int64_t grid[3] = {T, H, W};
  static const osp_pattern switching[3] = {OSP_PATTERN_TOKEN, OSP_PATTERN_GROUP, OSP_PATTERN_TOKEN};
  osp_arena arena;
  osp_sparse_plan plan;
  if (make_plan(switching, 3, ratio, batch, grid, &arena, &plan) != OSP_OK) {
    CHECK(!"plan");
    return;
  }
  const osp_layout *nat = &plan.layout[OSP_PATTERN_FULL], *tok = &plan.layout[OSP_PATTERN_TOKEN];
  const osp_layout *grp = &plan.layout[OSP_PATTERN_GROUP];
  const int64_t slots = tok->rows * tok->tokens, P2 = (int64_t)ratio * ratio;
  CHECK(grp->rows * grp->tokens == slots && tok->padded_h % P2 == 0 && tok->padded_w % P2 == 0);
  CHECK(tok->padded_h - H < P2 && tok->padded_w - W < P2);
  int bijective = 1, involution = 1, consistent = 1, masks = 1;
  for (int64_t i = 0; i < slots; i++) {
    bijective &= osp_layout_slot(tok, osp_layout_point(tok, i)) == i && osp_layout_slot(grp, osp_layout_point(grp, i)) == i;
    involution &= table(&plan, OSP_PATTERN_TOKEN, OSP_PATTERN_GROUP)[i] == table(&plan, OSP_PATTERN_GROUP, OSP_PATTERN_TOKEN)[i];
    const int32_t via_token = table(&plan, OSP_PATTERN_TOKEN, OSP_PATTERN_GROUP)[i];
    /* natural → group has no table in this plan: compare the grid points instead. */
    const osp_grid_point direct = osp_layout_point(grp, i), through = osp_layout_point(tok, via_token);
    consistent &= direct.b == through.b && direct.t == through.t && direct.y == through.y && direct.x == through.x;
    const int64_t row = i / tok->tokens;
    const osp_grid_point p = osp_layout_point(tok, i);
    const uint8_t *mask = plan.key_mask[OSP_PATTERN_TOKEN].data;
    masks &= (row % batch) == p.b && (row / batch) == (p.y % ratio) * ratio + p.x % ratio;
    if (mask) masks &= mask[i] == (p.y < H && p.x < W);
  }
  CHECK(bijective);
  CHECK(involution);
  CHECK(consistent);
  CHECK(masks);
  const int32_t *leave = table(&plan, OSP_PATTERN_TOKEN, OSP_PATTERN_FULL);
  const int32_t *enter = table(&plan, OSP_PATTERN_FULL, OSP_PATTERN_TOKEN);
  const int32_t *swap = table(&plan, OSP_PATTERN_TOKEN, OSP_PATTERN_GROUP);
  int round_trip = 1;
  for (int64_t n = 0; n < nat->rows * nat->tokens; n++) round_trip &= enter[leave[n]] == n;
  CHECK(round_trip); /* enter then leave: y[n] = x[enter[leave[n]]] */
  int switch_twice = 1;
  for (int64_t i = 0; i < slots; i++) switch_twice &= swap[swap[i]] == i;
  CHECK(switch_twice);
  osp_arena_free(&arena);
}

/* Reference: attention in natural order where query i sees key j iff both fall in the same
 * subsequence: token-wise id (y mod P)·P + (x mod P), group-wise ((y div P) mod P)·P + ((x div P) mod P). */
static int64_t subsequence(osp_pattern pattern, int P, int64_t y, int64_t x) {
  return pattern == OSP_PATTERN_TOKEN ? (y % P) * P + x % P : ((y / P) % P) * P + (x / P) % P;
}

static void masked_attention(osp_pattern pattern, int P, const int64_t grid[3], int64_t batch, int64_t D,
                             const float *q, const float *k, const float *v, float *out) {
  const int64_t N = grid[0] * grid[1] * grid[2], HW = grid[1] * grid[2];
  double *score = malloc((size_t)N * sizeof *score);
  for (int64_t b = 0; b < batch; b++)
    for (int64_t i = 0; i < N; i++) {
      const int64_t si = subsequence(pattern, P, i % HW / grid[2], i % grid[2]);
      double top = -INFINITY, sum = 0;
      for (int64_t j = 0; j < N; j++) {
        score[j] = -INFINITY;
        if (subsequence(pattern, P, j % HW / grid[2], j % grid[2]) != si) continue;
        double dot = 0;
        for (int64_t d = 0; d < D; d++) dot += (double)q[(b * N + i) * D + d] * k[(b * N + j) * D + d];
        score[j] = dot / sqrt((double)D);
        top = fmax(top, score[j]);
      }
      for (int64_t j = 0; j < N; j++) sum += score[j] == -INFINITY ? 0 : exp(score[j] - top);
      for (int64_t d = 0; d < D; d++) {
        double acc = 0;
        for (int64_t j = 0; j < N; j++)
          if (score[j] != -INFINITY) acc += exp(score[j] - top) / sum * v[(b * N + j) * D + d];
        out[(b * N + i) * D + d] = (float)acc;
      }
    }
  free(score);
}

/* Sparse attention through the plan: gather q, k, v into the layout (padding zero), attend per
 * row with padded keys masked, gather the result back to natural order. */
static osp_status planned_attention(const osp_sparse_plan *plan, osp_pattern pattern, int64_t D, float *q,
                                    float *k, float *v, float *out) {
  const osp_layout *nat = &plan->layout[OSP_PATTERN_FULL], *l = &plan->layout[pattern];
  const int64_t n_nat = nat->rows * nat->tokens, n_lay = l->rows * l->tokens;
  float *buffer = malloc((size_t)(4 * n_lay * D) * sizeof(float));
  const int64_t scratch_size = (int64_t)osp_attention_scratch_bytes(OSP_CPU);
  osp_tensor scratch = osp_tensor_make(malloc((size_t)scratch_size), OSP_U8, OSP_CPU, 1, &scratch_size);
  float *src[3] = {q, k, v};
  osp_status status = OSP_OK;
  for (int i = 0; i < 3 && status == OSP_OK; i++) {
    osp_tensor from = osp_tensor_make(src[i], OSP_F32, OSP_CPU, 2, (int64_t[]){n_nat, D});
    osp_tensor to = osp_tensor_make(buffer + i * n_lay * D, OSP_F32, OSP_CPU, 2, (int64_t[]){n_lay, D});
    status = osp_gather_rows(&from, &plan->gather[OSP_PATTERN_FULL][pattern], &to);
  }
  const int64_t shape[4] = {l->rows, l->tokens, 1, D};
  osp_tensor tq = osp_tensor_make(buffer, OSP_F32, OSP_CPU, 4, shape);
  osp_tensor tk = osp_tensor_make(buffer + n_lay * D, OSP_F32, OSP_CPU, 4, shape);
  osp_tensor tv = osp_tensor_make(buffer + 2 * n_lay * D, OSP_F32, OSP_CPU, 4, shape);
  osp_tensor to = osp_tensor_make(buffer + 3 * n_lay * D, OSP_F32, OSP_CPU, 4, shape);
  const osp_tensor *mask = plan->key_mask[pattern].data ? &plan->key_mask[pattern] : NULL;
  if (status == OSP_OK) status = osp_attention(&tq, &tk, &tv, mask, 1.0f / sqrtf((float)D), &scratch, &to);
  osp_tensor flat = osp_tensor_make(to.data, OSP_F32, OSP_CPU, 2, (int64_t[]){n_lay, D});
  osp_tensor natural = osp_tensor_make(out, OSP_F32, OSP_CPU, 2, (int64_t[]){n_nat, D});
  if (status == OSP_OK) status = osp_gather_rows(&flat, &plan->gather[pattern][OSP_PATTERN_FULL], &natural);
  free(scratch.data);
  free(buffer);
  return status;
}

static void test_attention_equivalence(osp_pattern pattern, int ratio, int64_t batch, int64_t T, int64_t H, int64_t W) {
  const int64_t grid[3] = {T, H, W}, N = T * H * W, D = 8;
  osp_arena arena;
  osp_sparse_plan plan;
  if (make_plan(&pattern, 1, ratio, batch, grid, &arena, &plan) != OSP_OK) {
    CHECK(!"plan");
    return;
  }
  const size_t n = (size_t)(batch * N * D);
  float *q = malloc(5 * n * sizeof(float)), *k = q + n, *v = k + n, *got = v + n, *want = got + n;
  for (size_t i = 0; i < 3 * n; i++) q[i] = (float)rand() / (float)RAND_MAX * 4.0f - 2.0f;
  CHECK(planned_attention(&plan, pattern, D, q, k, v, got) == OSP_OK);
  masked_attention(pattern, ratio, grid, batch, D, q, k, v, want);
  double err = 0, top = 0;
  for (size_t j = 0; j < n; j++) {
    err = fmax(err, fabs((double)got[j] - want[j]));
    top = fmax(top, fabs((double)want[j]));
  }
  printf("  %s-wise P=%d B=%lld grid %lldx%lldx%lld: max rel err %.2e\n", pattern == OSP_PATTERN_TOKEN ? "token" : "group",
         ratio, (long long)batch, (long long)T, (long long)H, (long long)W, err / top);
  CHECK(err <= 1e-5 * top);
  free(q);
  osp_arena_free(&arena);
}

static void test_ratio_larger_than_grid(void) {
  osp_model_config cfg = {.num_layers = 1, .sparse_ratio = 3};
  cfg.schedule[0] = OSP_PATTERN_TOKEN;
  osp_arena measure = osp_arena_measuring("plan");
  osp_sparse_plan plan;
  CHECK(osp_sparse_plan_make(&cfg, 1, (int64_t[]){2, 2, 5}, &measure, &plan) == OSP_ERR_SHAPE);
  CHECK(strstr(osp_last_error(), "sparse ratio 3 is larger than the token grid 2 x 5") != NULL);
}

int main(void) {
  test_worked_example();
  static const int64_t grids[][3] = {{3, 6, 10}, {2, 9, 14}, {1, 4, 4}, {5, 30, 52}};
  for (int g = 0; g < 4; g++)
    for (int P = 2; P <= 3; P++)
      for (int B = 1; B <= 2; B++) test_algebra(P, B, grids[g][0], grids[g][1], grids[g][2]);
  for (int g = 0; g < 4; g++)
    for (int P = 2; P <= 3; P++)
      for (int k = OSP_PATTERN_TOKEN; k <= OSP_PATTERN_GROUP; k++)
        test_attention_equivalence((osp_pattern)k, P, g == 3 ? 1 : 2, grids[g][0], grids[g][1], grids[g][2]);
  test_ratio_larger_than_grid();
  return test_summary("test_sparse");
}
