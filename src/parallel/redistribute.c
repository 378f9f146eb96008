#include "parallel/redistribute.h"

#include "core/status.h"
#include "ops/grad.h"
#include "ops/ops.h"

static int64_t local_slots(const osp_shard *s, int q) { return s->rows[q] * s->tokens[q]; }

/* The serial slot of `from` that slot i of `to` takes (−1: a padding slot, zero). */
static int32_t source_slot(const osp_tensor *gather, int64_t i) {
  return gather ? ((const int32_t *)gather->data)[i] : (int32_t)i;
}

/* Whether every token stays on its rank: then no rank sends anything. */
static bool moves_nothing(const osp_shard *from, const osp_shard *to, const osp_tensor *gather) {
  const int32_t *from_owner = from->owner.data, *to_owner = to->owner.data;
  for (int64_t i = 0; i < to->layout.rows * to->layout.tokens; i++) {
    const int32_t g = source_slot(gather, i);
    if (g >= 0 && from_owner[g] != to_owner[i]) return false;
  }
  return true;
}

/* pack: for each destination rank p in turn, the local rows of ours that p's slots take, in p's
 * order. unpack: each of our destination slots' row in the received buffer, which holds rank q's
 * rows (in our order) after those of ranks before q. */
static void fill_tables(const osp_shard *from, const osp_shard *to, const osp_tensor *gather,
                        osp_redistribution *r) {
  const int32_t *from_owner = from->owner.data, *from_local = from->local.data, *order = to->order.data;
  int32_t *pack = r->pack.data, *unpack = r->unpack.data;
  for (int p = 0; p < r->ranks; p++)
    for (int64_t j = 0; j < local_slots(to, p); j++) {
      const int32_t g = source_slot(gather, order[to->start[p] + j]);
      if (g < 0 || from_owner[g] != r->me) continue;
      pack[r->total_send++] = from_local[g];
      r->send_rows[p]++;
    }
  for (int64_t j = 0; j < local_slots(to, r->me); j++) {
    const int32_t g = source_slot(gather, order[to->start[r->me] + j]);
    if (g >= 0) r->recv_rows[from_owner[g]]++;
  }
  int64_t offset[OSP_MAX_RANKS];
  for (int q = 0; q < r->ranks; q++) {
    offset[q] = r->total_recv;
    r->total_recv += r->recv_rows[q];
  }
  for (int64_t j = 0; j < local_slots(to, r->me); j++) {
    const int32_t g = source_slot(gather, order[to->start[r->me] + j]);
    unpack[j] = g < 0 ? -1 : (int32_t)offset[from_owner[g]]++;
  }
}

osp_status osp_redistribution_plan(const osp_shard *from, const osp_shard *to, const osp_tensor *gather,
                                   int me, osp_arena *arena, osp_redistribution *r) {
  *r = (osp_redistribution){.me = me, .ranks = to->ranks};
  if (from->ranks != to->ranks || me < 0 || me >= to->ranks)
    return osp_fail(OSP_ERR_ARGUMENT, "redistribution: rank %d of %d ranks, from a split over %d", me,
                    to->ranks, from->ranks);
  const int64_t sent = local_slots(from, me), received = local_slots(to, me);
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 1, &sent, &r->pack));
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 1, &received, &r->unpack));
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 1, &received, &r->local_gather));
  if (!r->pack.data) return OSP_OK; /* measuring */
  r->local_only = moves_nothing(from, to, gather);
  if (!r->local_only) {
    fill_tables(from, to, gather, r);
    return OSP_OK;
  }
  const int32_t *from_local = from->local.data, *order = to->order.data;
  int32_t *local = r->local_gather.data;
  for (int64_t j = 0; j < received; j++) {
    const int32_t g = source_slot(gather, order[to->start[me] + j]);
    local[j] = g < 0 ? -1 : from_local[g];
  }
  return OSP_OK;
}

osp_tensor osp_rows_view(const osp_tensor *t, int64_t first, int64_t rows) {
  const int64_t C = t->shape[t->ndim - 1];
  return osp_tensor_make((char *)t->data + first * C * (int64_t)osp_dtype_size(t->dtype), t->dtype,
                         t->device, 2, (int64_t[]){rows, C});
}

osp_status osp_all_to_all_rows(osp_comm *comm, int64_t row_bytes, const osp_tensor *out, const int64_t *out_rows,
                               osp_tensor *in, const int64_t *in_rows) {
  int64_t send_bytes[OSP_MAX_RANKS], send_offset[OSP_MAX_RANKS], recv_bytes[OSP_MAX_RANKS], recv_offset[OSP_MAX_RANKS];
  int64_t sent = 0, received = 0;
  for (int q = 0; q < osp_comm_size(comm); q++) {
    send_offset[q] = sent * row_bytes;
    send_bytes[q] = out_rows[q] * row_bytes;
    recv_offset[q] = received * row_bytes;
    recv_bytes[q] = in_rows[q] * row_bytes;
    sent += out_rows[q];
    received += in_rows[q];
  }
  return osp_comm_all_to_all(comm, out->data, send_bytes, send_offset, in->data, recv_bytes, recv_offset);
}

static int64_t row_bytes_of(const osp_tensor *t) { return t->shape[t->ndim - 1] * (int64_t)osp_dtype_size(t->dtype); }

osp_status osp_redistribute(osp_comm *comm, const osp_redistribution *r, const osp_tensor *src,
                            osp_tensor *send, osp_tensor *recv, osp_tensor *dst) {
  if (r->local_only) return osp_gather_rows(src, &r->local_gather, dst);
  osp_tensor sent = osp_rows_view(send, 0, r->total_send), received = osp_rows_view(recv, 0, r->total_recv);
  osp_tensor pack = r->pack;
  pack.shape[0] = r->total_send;
  if (r->total_send) OSP_TRY(osp_gather_rows(src, &pack, &sent));
  OSP_TRY(osp_all_to_all_rows(comm, row_bytes_of(src), &sent, r->send_rows, &received, r->recv_rows));
  return osp_gather_rows(&received, &r->unpack, dst);
}

osp_status osp_redistribute_backward(osp_comm *comm, const osp_redistribution *r, const osp_tensor *ddst,
                                     osp_tensor *send, osp_tensor *recv, osp_tensor *dsrc) {
  OSP_TRY(osp_zero(dsrc));
  if (r->local_only) return osp_gather_rows_backward(ddst, &r->local_gather, dsrc);
  osp_tensor returned = osp_rows_view(send, 0, r->total_send), received = osp_rows_view(recv, 0, r->total_recv);
  osp_tensor pack = r->pack;
  pack.shape[0] = r->total_send;
  if (r->total_recv) OSP_TRY(osp_zero(&received));
  if (r->total_recv) OSP_TRY(osp_gather_rows_backward(ddst, &r->unpack, &received));
  OSP_TRY(osp_all_to_all_rows(comm, row_bytes_of(ddst), &received, r->recv_rows, &returned, r->send_rows));
  return r->total_send ? osp_gather_rows_backward(&returned, &pack, dsrc) : OSP_OK;
}
