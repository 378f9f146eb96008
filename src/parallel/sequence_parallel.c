#include "parallel/sequence_parallel.h"

#include <string.h>

#include "core/status.h"
#include "ops/ops.h"

osp_status osp_sp_mode_parse(const char *what, const char *text, osp_sp_mode *mode) {
  if (strcmp(text, "ulysses") == 0) *mode = OSP_SP_ULYSSES;
  else if (strcmp(text, "ssp") == 0) *mode = OSP_SP_SSP;
  else return osp_fail(OSP_ERR_ARGUMENT, "%s expects ulysses or ssp, found '%s'", what, text);
  return OSP_OK;
}

static bool uses_sparse(const osp_sparse_plan *p) { return p->used[OSP_PATTERN_TOKEN] || p->used[OSP_PATTERN_GROUP]; }

/* Each used layout's split: bands for Ulysses (P² lines when a Skiparse layout is in use, so that
 * layout changes stay on the rank), whole rows for SSP's Skiparse layouts. */
static osp_status split_layouts(osp_sp_plan *sp, const osp_sparse_plan *serial, osp_arena *host) {
  const int P = serial->layout[OSP_PATTERN_TOKEN].ratio;
  const int64_t band = sp->mode == OSP_SP_ULYSSES && uses_sparse(serial) ? (int64_t)P * P : 1;
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    if (!serial->used[k]) continue;
    sp->band_split[k] = k == OSP_PATTERN_FULL || sp->mode == OSP_SP_ULYSSES;
    if (sp->band_split[k]) OSP_TRY(osp_shard_bands(&serial->layout[k], sp->ranks, band, host, &sp->shard[k]));
    else OSP_TRY(osp_shard_rows(&serial->layout[k], sp->ranks, host, &sp->shard[k]));
  }
  return OSP_OK;
}

/* The serial plan's per-slot table cut to this rank's slots ([local slots, width]). */
static osp_status take(const osp_sp_plan *sp, int k, const osp_tensor *table, int width, osp_arena *host,
                       osp_tensor *out) {
  const osp_shard *s = &sp->shard[k];
  const int64_t shape[2] = {s->rows[sp->me] * s->tokens[sp->me], width};
  OSP_TRY(osp_arena_tensor(host, table->dtype, 2, shape, out));
  if (out->data) osp_shard_take(s, sp->me, table->data, (int)osp_dtype_size(table->dtype), width, out->data);
  return OSP_OK;
}

/* Which samples the rank's rows of layout k hold (row = s·B + b): every one where it has whole
 * multiples of B rows (each run of B rows is one subsequence of every sample), else a run of
 * consecutive samples inside one subsequence. */
static osp_status set_samples(osp_sp_plan *sp, int k, int64_t batch) {
  const int64_t rows = sp->shard[k].rows[sp->me], first_row = sp->shard[k].start[sp->me] / sp->shard[k].tokens[sp->me];
  sp->first_sample[k] = 0;
  sp->samples[k] = batch;
  if (sp->band_split[k] || rows % batch == 0) return OSP_OK;
  if (batch % rows != 0)
    return osp_fail(OSP_ERR_SHAPE, "SSP: %lld rows per rank split the batch of %lld unevenly", (long long)rows,
                    (long long)batch);
  sp->first_sample[k] = first_row % batch;
  sp->samples[k] = rows;
  return OSP_OK;
}

/* The local plan: this rank's layouts, positions and key masks (attention inside a band-split
 * layout is Ulysses', whose gathered mask it keeps itself), and the layout changes. */
static osp_status localize(osp_sp_plan *sp, const osp_model_config *cfg, const osp_sparse_plan *serial,
                           osp_arena *host) {
  osp_sparse_plan *local = &sp->local;
  *local = (osp_sparse_plan){0};
  for (int k = 0; k < OSP_PATTERN_COUNT; k++) {
    local->layout[k] = serial->layout[k];
    local->used[k] = serial->used[k];
    if (!serial->used[k]) continue;
    local->layout[k].rows = sp->shard[k].rows[sp->me];
    local->layout[k].tokens = sp->shard[k].tokens[sp->me];
    OSP_TRY(take(sp, k, &serial->positions[k], 3, host, &local->positions[k]));
    if (serial->key_mask[k].ndim && !sp->band_split[k]) {
      OSP_TRY(take(sp, k, &serial->key_mask[k], 1, host, &local->key_mask[k]));
      local->key_mask[k].shape[0] = local->layout[k].rows; /* [rows, tokens], as attention takes it */
      local->key_mask[k].shape[1] = local->layout[k].tokens;
      local->key_mask[k].stride[0] = local->layout[k].tokens;
    }
    if (sp->band_split[k])
      OSP_TRY(osp_ulysses_plan(&sp->shard[k], sp->me, cfg->num_heads, cfg->head_dim,
                               serial->key_mask[k].ndim ? &serial->key_mask[k] : NULL, host, &sp->ulysses[k]));
    OSP_TRY(set_samples(sp, k, serial->layout[k].batch));
    const int64_t slots = local->layout[k].rows * local->layout[k].tokens;
    if (slots > local->max_slots) local->max_slots = slots;
  }
  for (int from = 0; from < OSP_PATTERN_COUNT; from++)
    for (int to = 0; to < OSP_PATTERN_COUNT; to++) {
      if (!serial->gather[from][to].ndim) continue;
      osp_redistribution *r = &sp->change[from][to];
      OSP_TRY(osp_redistribution_plan(&sp->shard[from], &sp->shard[to], &serial->gather[from][to], sp->me, host, r));
      /* While the arenas only measure, whether a change stays local is not known yet (it needs the
       * tables): room for its local gather either way. */
      if (r->local_only || !r->pack.data) local->gather[from][to] = r->local_gather;
    }
  return OSP_OK;
}

/* The patch rows this rank embeds, and where each natural slot lands in the gathered head output
 * (rank q's rows follow those of the ranks before it, so slot order[j] is row j). */
static osp_status natural_tables(osp_sp_plan *sp, osp_arena *host) {
  const osp_shard *s = &sp->shard[OSP_PATTERN_FULL];
  const int64_t mine = s->rows[sp->me] * s->tokens[sp->me], slots = s->layout.rows * s->layout.tokens;
  OSP_TRY(osp_arena_tensor(host, OSP_I32, 1, &mine, &sp->natural_order));
  OSP_TRY(osp_arena_tensor(host, OSP_I32, 1, &slots, &sp->head_unpack));
  if (!sp->head_unpack.data) return OSP_OK;
  const int32_t *order = s->order.data;
  memcpy(sp->natural_order.data, order + s->start[sp->me], (size_t)mine * sizeof(int32_t));
  int32_t *unpack = sp->head_unpack.data;
  for (int64_t j = 0; j < slots; j++) unpack[order[j]] = (int32_t)j;
  return OSP_OK;
}

osp_status osp_sp_plan_for(int me, int ranks, osp_sp_mode mode, const osp_model_config *cfg,
                           const osp_sparse_plan *serial, osp_arena *host, osp_sp_plan *sp) {
  *sp = (osp_sp_plan){.mode = mode, .me = me, .ranks = ranks};
  OSP_TRY(split_layouts(sp, serial, host));
  OSP_TRY(localize(sp, cfg, serial, host));
  return natural_tables(sp, host);
}

osp_status osp_sp_plan_make(osp_comm *comm, osp_sp_mode mode, const osp_model_config *cfg,
                            const osp_sparse_plan *serial, osp_arena *host, osp_sp_plan *sp) {
  OSP_TRY(osp_sp_plan_for(osp_comm_rank(comm), osp_comm_size(comm), mode, cfg, serial, host, sp));
  sp->comm = comm;
  return OSP_OK;
}

/* Rows of C values a layout change sends the other ranks (none where it stays on the rank). */
static int64_t change_rows(const osp_sp_plan *sp, osp_pattern from, osp_pattern to) {
  const osp_redistribution *r = &sp->change[from][to];
  int64_t rows = 0;
  for (int q = 0; q < sp->ranks && from != to && !r->local_only; q++)
    if (q != sp->me) rows += r->send_rows[q];
  return rows;
}

int64_t osp_sp_block_bytes(const osp_sp_plan *sp, const osp_model_config *cfg, int index, int64_t value_bytes) {
  const osp_pattern k = (osp_pattern)cfg->schedule[index], next = index + 1 < cfg->num_layers
                                                                        ? (osp_pattern)cfg->schedule[index + 1]
                                                                        : OSP_PATTERN_FULL;
  int64_t values = change_rows(sp, k, next) * cfg->dim;
  if (index == 0) values += change_rows(sp, OSP_PATTERN_FULL, k) * cfg->dim;
  if (sp->band_split[k]) { /* q, k, v out: this rank's tokens of each other head group; back: theirs */
    const osp_ulysses *u = &sp->ulysses[k];
    for (int p = 0; p < sp->ranks; p++)
      if (p != sp->me) values += (3 * u->rows * u->tokens + u->rows * u->token_counts[p]) * u->head_width;
  }
  return values * value_bytes;
}

osp_status osp_sp_allocate(osp_sp_plan *sp, osp_dtype dtype, int64_t C, bool move_tables,
                           osp_arena *device_arena) {
  int64_t rows = 0;
  for (int from = 0; from < OSP_PATTERN_COUNT; from++)
    for (int to = 0; to < OSP_PATTERN_COUNT; to++) {
      osp_redistribution *r = &sp->change[from][to];
      const int64_t most = r->pack.ndim ? (r->pack.shape[0] > r->unpack.shape[0] ? r->pack.shape[0] : r->unpack.shape[0]) : 0;
      if (most > rows) rows = most;
      if (!move_tables || !r->pack.ndim) continue;
      OSP_TRY(osp_arena_upload(device_arena, &r->pack));
      OSP_TRY(osp_arena_upload(device_arena, &r->unpack));
    }
  OSP_TRY(osp_arena_tensor(device_arena, dtype, 2, (int64_t[]){rows, C}, &sp->send));
  OSP_TRY(osp_arena_tensor(device_arena, dtype, 2, (int64_t[]){rows, C}, &sp->recv));
  for (int k = 0; k < OSP_PATTERN_COUNT; k++)
    if (sp->band_split[k]) OSP_TRY(osp_ulysses_allocate(&sp->ulysses[k], dtype, move_tables, device_arena));
  if (!move_tables) return OSP_OK;
  OSP_TRY(osp_arena_upload(device_arena, &sp->natural_order));
  return osp_arena_upload(device_arena, &sp->head_unpack);
}

osp_status osp_sp_change_layout(const osp_sp_plan *sp, osp_pattern from, osp_pattern to,
                                const osp_tensor *x, osp_tensor *x_next) {
  osp_tensor send = sp->send, recv = sp->recv;
  return osp_redistribute(sp->comm, &sp->change[from][to], x, &send, &recv, x_next);
}

osp_status osp_sp_change_layout_backward(const osp_sp_plan *sp, osp_pattern from, osp_pattern to,
                                         const osp_tensor *dx_next, osp_tensor *dx) {
  osp_tensor send = sp->send, recv = sp->recv;
  return osp_redistribute_backward(sp->comm, &sp->change[from][to], dx_next, &send, &recv, dx);
}

osp_status osp_sp_gather_natural(const osp_sp_plan *sp, const osp_tensor *mine, osp_tensor *gathered,
                                 osp_tensor *full) {
  const osp_shard *s = &sp->shard[OSP_PATTERN_FULL];
  const int64_t row_bytes = mine->shape[mine->ndim - 1] * (int64_t)osp_dtype_size(mine->dtype);
  int64_t bytes[OSP_MAX_RANKS], offset[OSP_MAX_RANKS];
  for (int q = 0; q < sp->ranks; q++) {
    bytes[q] = s->rows[q] * s->tokens[q] * row_bytes;
    offset[q] = s->start[q] * row_bytes;
  }
  OSP_TRY(osp_comm_all_gather(sp->comm, mine->data, bytes[sp->me], gathered->data, bytes, offset));
  return osp_gather_rows(gathered, &sp->head_unpack, full);
}
