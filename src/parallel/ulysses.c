#include "parallel/ulysses.h"

#include "core/status.h"
#include "ops/grad.h"
#include "ops/ops.h"
#include "parallel/redistribute.h"

static int64_t units_local(const osp_ulysses *u) { return u->rows * u->tokens * u->ranks; }
static int64_t units_gathered(const osp_ulysses *u) { return u->rows * u->gathered; }

/* Where rank q's tokens start in a gathered row, and where its part starts in a received buffer
 * (rank q sends rows·tokens[q] units). */
static int64_t row_offset(const osp_ulysses *u, int q) {
  int64_t offset = 0;
  for (int p = 0; p < q; p++) offset += u->token_counts[p];
  return offset;
}

static void fill_tables(osp_ulysses *u) {
  int32_t *scatter_pack = u->scatter_pack.data, *gather_unpack = u->gather_unpack.data;
  int32_t *scatter_unpack = u->scatter_unpack.data, *gather_pack = u->gather_pack.data;
  const int S = u->ranks;
  /* Ours out: send (p, row, pos) = local unit (row·tokens + pos)·S + p, and back the same way. */
  int64_t i = 0;
  for (int p = 0; p < S; p++)
    for (int64_t t = 0; t < u->rows * u->tokens; t++, i++) {
      scatter_pack[i] = (int32_t)(t * S + p);
      gather_unpack[t * S + p] = (int32_t)i;
    }
  /* Theirs in: received (q, row, pos) = gathered (row, offset_q + pos), and back the same way. */
  i = 0;
  for (int q = 0; q < S; q++) {
    const int64_t offset = row_offset(u, q);
    for (int64_t row = 0; row < u->rows; row++)
      for (int64_t pos = 0; pos < u->token_counts[q]; pos++, i++) {
        const int64_t g = row * u->gathered + offset + pos;
        scatter_unpack[g] = (int32_t)i;
        gather_pack[i] = (int32_t)g;
      }
  }
}

/* The key mask of the gathered rows: rank q's tokens of row r in its local order. */
static void fill_key_mask(const osp_shard *shard, const osp_tensor *serial, osp_ulysses *u) {
  const uint8_t *mask = serial->data;
  const int32_t *order = shard->order.data;
  uint8_t *out = u->key_mask.data;
  for (int q = 0; q < u->ranks; q++) {
    const int64_t offset = row_offset(u, q);
    for (int64_t row = 0; row < u->rows; row++)
      for (int64_t pos = 0; pos < u->token_counts[q]; pos++)
        out[row * u->gathered + offset + pos] = mask[order[shard->start[q] + row * u->token_counts[q] + pos]];
  }
}

osp_status osp_ulysses_plan(const osp_shard *shard, int me, int heads, int head_dim,
                            const osp_tensor *serial_key_mask, osp_arena *host, osp_ulysses *u) {
  *u = (osp_ulysses){.me = me, .ranks = shard->ranks, .heads = heads, .rows = shard->rows[me],
                     .tokens = shard->tokens[me]};
  if (heads % shard->ranks != 0)
    return osp_fail(OSP_ERR_ARGUMENT,
                    "Ulysses splits the %d attention heads over the %d ranks, which must divide them "
                    "(use a rank count that divides %d)",
                    heads, shard->ranks, heads);
  u->head_width = (int64_t)heads / shard->ranks * head_dim;
  for (int q = 0; q < u->ranks; q++) {
    u->token_counts[q] = shard->tokens[q];
    u->gathered += shard->tokens[q];
  }
  const int64_t local = units_local(u), gathered = units_gathered(u);
  OSP_TRY(osp_arena_tensor(host, OSP_I32, 1, &local, &u->scatter_pack));
  OSP_TRY(osp_arena_tensor(host, OSP_I32, 1, &local, &u->gather_unpack));
  OSP_TRY(osp_arena_tensor(host, OSP_I32, 1, &gathered, &u->scatter_unpack));
  OSP_TRY(osp_arena_tensor(host, OSP_I32, 1, &gathered, &u->gather_pack));
  if (serial_key_mask && serial_key_mask->ndim)
    OSP_TRY(osp_arena_tensor(host, OSP_U8, 2, (int64_t[]){u->rows, u->gathered}, &u->key_mask));
  if (!u->scatter_pack.data) return OSP_OK; /* measuring */
  fill_tables(u);
  if (u->key_mask.data) fill_key_mask(shard, serial_key_mask, u);
  return OSP_OK;
}

osp_status osp_ulysses_allocate(osp_ulysses *u, osp_dtype dtype, bool move_tables, osp_arena *device) {
  osp_tensor *tables[5] = {&u->scatter_pack, &u->scatter_unpack, &u->gather_pack, &u->gather_unpack, &u->key_mask};
  for (int i = 0; move_tables && i < 5; i++) OSP_TRY(osp_arena_upload(device, tables[i]));
  const int64_t shape[4] = {u->rows, u->gathered, u->heads / u->ranks, u->head_width / (u->heads / u->ranks)};
  osp_tensor *gathered[4] = {&u->q, &u->k, &u->v, &u->out};
  for (int i = 0; i < 4; i++) OSP_TRY(osp_arena_tensor(device, dtype, 4, shape, gathered[i]));
  const int64_t units = units_local(u) > units_gathered(u) ? units_local(u) : units_gathered(u);
  OSP_TRY(osp_arena_tensor(device, dtype, 2, (int64_t[]){units, u->head_width}, &u->send));
  return osp_arena_tensor(device, dtype, 2, (int64_t[]){units, u->head_width}, &u->recv);
}

/* dst = the units of src taken by `pack`, all-to-all with `sent`/`received` units per rank, then
 * the received units placed by `unpack`. */
static osp_status exchange(osp_comm *comm, const osp_ulysses *u, const osp_tensor *src, const osp_tensor *pack,
                           const int64_t *sent, const int64_t *received, const osp_tensor *unpack,
                           osp_tensor *dst) {
  int64_t total_sent = 0, total_received = 0;
  for (int q = 0; q < u->ranks; q++) {
    total_sent += sent[q];
    total_received += received[q];
  }
  osp_tensor src_units = osp_tensor_make(src->data, src->dtype, src->device, 2,
                                         (int64_t[]){osp_tensor_numel(src) / u->head_width, u->head_width});
  osp_tensor send = osp_rows_view(&u->send, 0, total_sent), recv = osp_rows_view(&u->recv, 0, total_received);
  osp_tensor dst_units = osp_tensor_make(dst->data, dst->dtype, dst->device, 2,
                                         (int64_t[]){osp_tensor_numel(dst) / u->head_width, u->head_width});
  OSP_TRY(osp_gather_rows(&src_units, pack, &send));
  OSP_TRY(osp_all_to_all_rows(comm, u->head_width * (int64_t)osp_dtype_size(src->dtype), &send, sent, &recv, received));
  return osp_gather_rows(&recv, unpack, &dst_units);
}

/* The units this rank sends each rank as q goes out (`mine`: its own tokens of one head group),
 * and receives from each (`theirs`: that rank's tokens). */
static void unit_counts(const osp_ulysses *u, int64_t *mine, int64_t *theirs) {
  for (int p = 0; p < u->ranks; p++) {
    mine[p] = u->rows * u->tokens;
    theirs[p] = u->rows * u->token_counts[p];
  }
}

/* Local [rows, tokens, heads, D] → gathered [rows, gathered, heads/ranks, D] (as q goes out), or
 * back (as the output comes home). */
static osp_status scatter_heads(osp_comm *comm, const osp_ulysses *u, const osp_tensor *local, osp_tensor *gathered) {
  int64_t mine[OSP_MAX_RANKS], theirs[OSP_MAX_RANKS];
  unit_counts(u, mine, theirs);
  return exchange(comm, u, local, &u->scatter_pack, mine, theirs, &u->scatter_unpack, gathered);
}

static osp_status gather_heads(osp_comm *comm, const osp_ulysses *u, const osp_tensor *gathered, osp_tensor *local) {
  int64_t mine[OSP_MAX_RANKS], theirs[OSP_MAX_RANKS];
  unit_counts(u, mine, theirs);
  return exchange(comm, u, gathered, &u->gather_pack, theirs, mine, &u->gather_unpack, local);
}

osp_status osp_ulysses_attention(osp_comm *comm, const osp_ulysses *u, const osp_tensor *q,
                                 const osp_tensor *k, const osp_tensor *v, float scale, float hif8_max,
                                 const osp_tensor *scratch, const osp_ulysses_gathered *keep,
                                 osp_tensor *out) {
  const osp_tensor *local[3] = {q, k, v};
  osp_ulysses_gathered g = keep ? *keep : (osp_ulysses_gathered){.q = u->q, .k = u->k, .v = u->v, .out = u->out};
  osp_tensor *gathered[3] = {&g.q, &g.k, &g.v};
  for (int i = 0; i < 3; i++) OSP_TRY(scatter_heads(comm, u, local[i], gathered[i]));
  for (int i = 0; i < 3 && hif8_max > 0; i++) OSP_TRY(osp_hif8_quantize(gathered[i], hif8_max, gathered[i]));
  const osp_tensor *mask = u->key_mask.data ? &u->key_mask : NULL;
  if (g.lse.data) OSP_TRY(osp_attention_forward_lse(&g.q, &g.k, &g.v, mask, scale, scratch, &g.out, &g.lse));
  else OSP_TRY(osp_attention(&g.q, &g.k, &g.v, mask, scale, scratch, &g.out));
  return gather_heads(comm, u, &g.out, out);
}

osp_status osp_ulysses_attention_backward(osp_comm *comm, const osp_ulysses *u, const osp_ulysses_gathered *kept,
                                          const osp_tensor *dout, float scale, float hif8_max,
                                          const osp_tensor *scratch, osp_tensor *dq, osp_tensor *dk, osp_tensor *dv) {
  osp_tensor dout_g = u->out, dq_g = u->q, dk_g = u->k, dv_g = u->v;
  OSP_TRY(scatter_heads(comm, u, dout, &dout_g));
  OSP_TRY(osp_zero(&dq_g));
  OSP_TRY(osp_zero(&dk_g));
  OSP_TRY(osp_zero(&dv_g));
  const osp_tensor *mask = u->key_mask.data ? &u->key_mask : NULL;
  OSP_TRY(osp_attention_backward(&kept->q, &kept->k, &kept->v, mask, scale, &kept->out, &kept->lse, &dout_g,
                                 scratch, &dq_g, &dk_g, &dv_g));
  osp_tensor *gradients[3] = {&dq_g, &dk_g, &dv_g};
  for (int i = 0; i < 3 && hif8_max > 0; i++) OSP_TRY(osp_hif8_quantize(gradients[i], hif8_max, gradients[i]));
  OSP_TRY(gather_heads(comm, u, &dq_g, dq));
  OSP_TRY(gather_heads(comm, u, &dk_g, dk));
  return gather_heads(comm, u, &dv_g, dv);
}
