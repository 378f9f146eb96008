#include "bench_traffic.h"

#include <stdio.h>

#include "core/status.h"
#include "parallel/sequence_parallel.h"

/* Bytes per block (summed over a group's ranks) under one mode. */
typedef struct {
  double block[OSP_MAX_LAYERS];
} traffic;

/* Rank `me`'s plan over the serial one: measured, then made in an arena of its own. */
static osp_status count_rank(const osp_model_config *c, const osp_sparse_plan *serial, int me, int ranks,
                             osp_sp_mode mode, int value_bytes, traffic *t) {
  osp_arena measure = osp_arena_measuring("traffic plan"), arena = {0};
  osp_sp_plan sp;
  OSP_TRY(osp_sp_plan_for(me, ranks, mode, c, serial, &measure, &sp));
  OSP_TRY(osp_arena_init(&arena, "traffic plan", measure.peak));
  osp_status status = osp_sp_plan_for(me, ranks, mode, c, serial, &arena, &sp);
  for (int i = 0; status == OSP_OK && i < c->num_layers; i++)
    t->block[i] += (double)osp_sp_block_bytes(&sp, c, i, value_bytes);
  osp_arena_free(&arena);
  return status;
}

static osp_status count(const osp_model_config *c, const osp_sparse_plan *serial, int ranks, osp_sp_mode mode,
                        int value_bytes, traffic *t) {
  *t = (traffic){{0}};
  for (int me = 0; me < ranks; me++) OSP_TRY(count_rank(c, serial, me, ranks, mode, value_bytes, t));
  return OSP_OK;
}

/* The mean over the blocks of one pattern, per rank (0 where the schedule has none). */
static double per_pattern(const osp_model_config *c, const traffic *t, int pattern, int ranks) {
  double sum = 0;
  int n = 0;
  for (int i = 0; i < c->num_layers; i++)
    if (c->schedule[i] == pattern) sum += t->block[i], n++;
  return n ? sum / n / ranks : 0;
}

static double forward_total(const osp_model_config *c, const traffic *t, int ranks) {
  double sum = 0;
  for (int i = 0; i < c->num_layers; i++) sum += t->block[i];
  return sum / ranks;
}

osp_status bench_traffic(const osp_model_config *c, const bench_traffic_shape *shape, int ranks,
                         bool cfg_parallel, int value_bytes, json_t *results) {
  const int group = cfg_parallel ? ranks / 2 : ranks;
  if (group < 2 || (cfg_parallel && ranks % 2))
    return osp_fail(OSP_ERR_ARGUMENT, "--dry-run: %d ranks%s leave no sequence group of 2 or more", ranks,
                    cfg_parallel ? " in two CFG groups" : "");
  int64_t grid[3];
  for (int d = 0; d < 3; d++) grid[d] = shape->latent[d] / c->patch_size[d];
  osp_arena measure = osp_arena_measuring("traffic serial plan"), arena = {0};
  osp_sparse_plan serial;
  OSP_TRY(osp_sparse_plan_make(c, 1, grid, &measure, &serial));
  OSP_TRY(osp_arena_init(&arena, "traffic serial plan", measure.peak));
  traffic ulysses, ssp = {{0}};
  osp_status status = osp_sparse_plan_make(c, 1, grid, &arena, &serial);
  if (status == OSP_OK) status = count(c, &serial, group, OSP_SP_ULYSSES, value_bytes, &ulysses);
  /* SSP may not split this group (its ranks must divide the P² subsequences): say why, go on */
  const osp_status ssp_status = status == OSP_OK ? count(c, &serial, group, OSP_SP_SSP, value_bytes, &ssp) : status;
  if (ssp_status != OSP_OK && status == OSP_OK) printf("traffic   SSP: %s\n", osp_last_error());
  const osp_layout natural = serial.layout[OSP_PATTERN_FULL], sparse = serial.layout[OSP_PATTERN_TOKEN];
  osp_arena_free(&arena);
  if (status != OSP_OK) return status;
  const double N = (double)(natural.rows * natural.tokens), padded = (double)(sparse.T * sparse.padded_h * sparse.padded_w);
  char letters[OSP_MAX_LAYERS + 1];
  printf("traffic   %s %s, %d ranks%s: bytes each rank sends (mean), %d-byte values\n", shape->name,
         osp_config_schedule_string(c, letters, sizeof letters), ranks,
         cfg_parallel ? " (CFG: two groups, one sample each)" : "", value_bytes);
  const bool has_ssp = ssp_status == OSP_OK;
  printf("%-40s %14s %14s\n", "", "Ulysses", has_ssp ? "SSP" : "");
  const char *names[OSP_PATTERN_COUNT] = {"full block", "token block", "group block"};
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    const double u = per_pattern(c, &ulysses, k, group), v = per_pattern(c, &ssp, k, group);
    if (u == 0 && v == 0) continue;
    printf("%-40s %11.1f MB", names[k], u * 1e-6);
    if (has_ssp) printf(" %11.1f MB", v * 1e-6);
    printf("\n");
  }
  const double total_u = forward_total(c, &ulysses, group), total_s = forward_total(c, &ssp, group);
  printf("%-40s %11.2f GB", "forward", total_u * 1e-9);
  if (has_ssp) printf(" %11.2f GB (%.1f%% of Ulysses)", total_s * 1e-9, 100 * total_s / total_u);
  printf("\n");
  printf("%-40s N'/(4N) = %.4f (N = %.0f, N' = %.0f tokens)\n", "a switch block against a full block", padded / (4 * N),
         N, padded);
  json_t *row = json_pack("{s:s, s:s, s:s, s:i, s:b, s:f, s:f, s:f, s:f}", "section", "traffic", "resolution",
                          shape->name, "schedule", letters, "ranks", ranks, "cfg_parallel", cfg_parallel,
                          "ulysses_forward_bytes", total_u, "ulysses_full_block_bytes",
                          per_pattern(c, &ulysses, OSP_PATTERN_FULL, group), "tokens", N, "padded_tokens", padded);
  /* SSP's numbers where it can split the group; null where it cannot */
  json_object_set_new(row, "ssp_forward_bytes", has_ssp ? json_real(total_s) : json_null());
  json_object_set_new(row, "ssp_token_block_bytes",
                      has_ssp ? json_real(per_pattern(c, &ssp, OSP_PATTERN_TOKEN, group)) : json_null());
  json_array_append_new(results, row);
  return OSP_OK;
}
