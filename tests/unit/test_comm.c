/* The communicator (src/parallel/comm.h) on as many ranks as run it: one in a plain run, or N under
 * mpirun (tests/parallel/run_mpi.sh runs 2, 3 and 4). Each collective with uneven parts (zero-byte
 * ones too) and arbitrary offsets, the sums against known values and bit for bit across ranks, a
 * broadcast from the last rank, a split into two colors, the byte counters against what each rank
 * sends the others, and bad arguments. Every rank checks; rank 0 prints the totals of all ranks.
 * With OSP_COMM_TEST_LARGE=1 on 2 ranks, also a part over 2 GiB at an offset over 2 GiB (about
 * 4.5 GB of memory in all). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "parallel/comm.h"

enum { MAX_RANKS = 16, SENTINEL = 0xEE };

static int me, ranks;

static bool failed_with(osp_status got, osp_status want, const char *words) {
  return got == want && strstr(osp_last_error(), words) != NULL;
}

/* The all-to-all's parts: rank `from` sends rank `to` this many bytes (uneven; none where
 * from + 2·to ≡ 3 mod 4, such as 1 → 1 and 2 → 2), byte i of them this value. */
static int64_t a2a_bytes(int from, int to) { return (from + 2 * to + 1) % 4 * 5; }
static uint8_t a2a_value(int from, int to, int64_t i) { return (uint8_t)(from * 31 + to * 7 + i); }

/* Offsets with gaps: in rank order on the send side (1 byte apart), in reverse on the receive side
 * (2 bytes apart), so that a part landing at the wrong offset or running over shows. */
static int64_t pack(const int64_t *bytes, int64_t *offset, int gap, bool reverse) {
  int64_t at = 0;
  for (int i = 0; i < ranks; i++) {
    const int q = reverse ? ranks - 1 - i : i;
    offset[q] = at;
    at += bytes[q] + gap;
  }
  return at;
}

static void test_all_to_all(osp_comm *world) {
  int64_t send_bytes[MAX_RANKS], send_offset[MAX_RANKS], recv_bytes[MAX_RANKS], recv_offset[MAX_RANKS];
  int64_t to_others = 0;
  for (int q = 0; q < ranks; q++) {
    send_bytes[q] = a2a_bytes(me, q);
    recv_bytes[q] = a2a_bytes(q, me);
    if (q != me) to_others += send_bytes[q];
  }
  const int64_t send_size = pack(send_bytes, send_offset, 1, false);
  const int64_t recv_size = pack(recv_bytes, recv_offset, 2, true);
  uint8_t *send = malloc((size_t)send_size), *recv = malloc((size_t)recv_size);
  memset(send, 0, (size_t)send_size);
  memset(recv, SENTINEL, (size_t)recv_size);
  for (int q = 0; q < ranks; q++)
    for (int64_t i = 0; i < send_bytes[q]; i++) send[send_offset[q] + i] = a2a_value(me, q, i);

  osp_comm_reset_counters(world);
  CHECK(osp_comm_all_to_all(world, send, send_bytes, send_offset, recv, recv_bytes, recv_offset) == OSP_OK);
  int wrong = 0;
  for (int q = 0; q < ranks; q++) {
    for (int64_t i = 0; i < recv_bytes[q]; i++) wrong += recv[recv_offset[q] + i] != a2a_value(q, me, i);
    for (int g = 0; g < 2; g++) wrong += recv[recv_offset[q] + recv_bytes[q] + g] != SENTINEL;
  }
  CHECK(wrong == 0);
  const osp_comm_counter counter = osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_TO_ALL);
  CHECK(counter.calls == 1);
  CHECK(counter.bytes_sent == to_others);
  CHECK(counter.seconds >= 0);
  CHECK(osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_GATHER).calls == 0);

  /* Bad arguments fail on every rank alike, before anyone communicates, and are not counted. */
  send_bytes[0] = -1;
  CHECK(failed_with(osp_comm_all_to_all(world, send, send_bytes, send_offset, recv, recv_bytes, recv_offset),
                    OSP_ERR_ARGUMENT, "send_bytes[0] = -1"));
  send_bytes[0] = a2a_bytes(me, 0);
  recv_bytes[me] += 1;
  CHECK(failed_with(osp_comm_all_to_all(world, send, send_bytes, send_offset, recv, recv_bytes, recv_offset),
                    OSP_ERR_ARGUMENT, "sends itself"));
  recv_bytes[me] -= 1;
  CHECK(failed_with(osp_comm_all_to_all(world, send, send_bytes, send_offset, send + 1, recv_bytes, recv_offset),
                    OSP_ERR_ARGUMENT, "overlap"));
  CHECK(failed_with(osp_comm_all_to_all(world, send, send_bytes, NULL, recv, recv_bytes, recv_offset),
                    OSP_ERR_ARGUMENT, "send_offset"));
  CHECK(failed_with(osp_comm_all_to_all(world, NULL, send_bytes, send_offset, recv, recv_bytes, recv_offset),
                    OSP_ERR_ARGUMENT, "send buffer is NULL"));
  CHECK(osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_TO_ALL).calls == 1);
  free(send);
  free(recv);
}

/* The all-gather's parts: rank q contributes this many bytes (none for rank 1), byte i this value. */
static int64_t gather_bytes(int q) { return q == 1 ? 0 : 2 + 5 * q; }
static uint8_t gather_value(int q, int64_t i) { return (uint8_t)(q * 13 + i * 3 + 1); }

static void test_all_gather(osp_comm *world) {
  int64_t recv_bytes[MAX_RANKS], recv_offset[MAX_RANKS];
  for (int q = 0; q < ranks; q++) recv_bytes[q] = gather_bytes(q);
  const int64_t recv_size = pack(recv_bytes, recv_offset, 2, true);
  const int64_t bytes = gather_bytes(me);
  uint8_t send[64], *recv = malloc((size_t)recv_size);
  for (int64_t i = 0; i < bytes; i++) send[i] = gather_value(me, i);
  memset(recv, SENTINEL, (size_t)recv_size);

  osp_comm_reset_counters(world);
  CHECK(osp_comm_all_gather(world, send, bytes, recv, recv_bytes, recv_offset) == OSP_OK);
  int wrong = 0;
  for (int q = 0; q < ranks; q++) {
    for (int64_t i = 0; i < recv_bytes[q]; i++) wrong += recv[recv_offset[q] + i] != gather_value(q, i);
    for (int g = 0; g < 2; g++) wrong += recv[recv_offset[q] + recv_bytes[q] + g] != SENTINEL;
  }
  CHECK(wrong == 0);
  const osp_comm_counter counter = osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_GATHER);
  CHECK(counter.calls == 1);
  CHECK(counter.bytes_sent == bytes * (ranks - 1));

  CHECK(failed_with(osp_comm_all_gather(world, send, bytes + 1, recv, recv_bytes, recv_offset),
                    OSP_ERR_ARGUMENT, "recv_bytes"));
  CHECK(failed_with(osp_comm_all_gather(world, send, -4, recv, recv_bytes, recv_offset), OSP_ERR_ARGUMENT,
                    "negative"));
  free(recv);
}

/* Rank r's i-th value for the bitwise test: fractions whose float sums round differently in
 * different orders. */
static float awkward(int rank, int i) { return (i % 3 ? 1.0f : -1.0f) / (float)(1 + i + 7 * rank); }

static void test_all_reduce(osp_comm *world) {
  /* Exact sums: rank r holds (r + 1)·(i + 1)/4, so the sum is ranks(ranks + 1)/2·(i + 1)/4. */
  enum { N = 24 }; /* a multiple of 1, 2, 3 and 4: each rank's slice is the same length */
  float exact[N];
  for (int i = 0; i < N; i++) exact[i] = (float)(me + 1) * (float)(i + 1) * 0.25f;
  osp_comm_reset_counters(world);
  CHECK(osp_comm_all_reduce_sum(world, exact, OSP_F32, N) == OSP_OK);
  int wrong = 0;
  for (int i = 0; i < N; i++) wrong += exact[i] != (float)(ranks * (ranks + 1) / 2) * (float)(i + 1) * 0.25f;
  CHECK(wrong == 0);
  /* Each rank sends 2·(ranks − 1)/ranks of the buffer (reduce-scatter, then all-gather). */
  osp_comm_counter counter = osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_REDUCE);
  CHECK(counter.calls == 1);
  CHECK(counter.bytes_sent == 2 * N * 4 * (ranks - 1) / ranks);

  /* The same bits on every rank, on every run, and those of a plain loop over the ranks in order
   * (the documented order of the MPI implementation; trivially true on one rank). 1000 values do
   * not split evenly over 3 or 4 ranks. */
  enum { M = 1000 };
  float *sum = malloc(M * sizeof(float)), *again = malloc(M * sizeof(float)), *want = malloc(M * sizeof(float));
  float *everyone = malloc((size_t)ranks * M * sizeof(float));
  for (int i = 0; i < M; i++) {
    sum[i] = again[i] = awkward(me, i);
    want[i] = awkward(0, i);
    for (int q = 1; q < ranks; q++) want[i] += awkward(q, i);
  }
  CHECK(osp_comm_all_reduce_sum(world, sum, OSP_F32, M) == OSP_OK);
  CHECK(osp_comm_all_reduce_sum(world, again, OSP_F32, M) == OSP_OK);
  CHECK(memcmp(sum, want, M * sizeof(float)) == 0);
  CHECK(memcmp(sum, again, M * sizeof(float)) == 0);
  int64_t bytes[MAX_RANKS], offset[MAX_RANKS];
  for (int q = 0; q < ranks; q++) bytes[q] = M * sizeof(float), offset[q] = (int64_t)q * M * sizeof(float);
  CHECK(osp_comm_all_gather(world, sum, M * sizeof(float), everyone, bytes, offset) == OSP_OK);
  int differ = 0;
  for (int q = 0; q < ranks; q++) differ += memcmp(everyone + (size_t)q * M, sum, M * sizeof(float)) != 0;
  CHECK(differ == 0);
  CHECK(osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_REDUCE).calls == 3);
  free(sum);
  free(again);
  free(want);
  free(everyone);

  float one = 1; /* fewer values than ranks: some ranks' slices are empty */
  CHECK(osp_comm_all_reduce_sum(world, &one, OSP_F32, 1) == OSP_OK);
  CHECK(one == (float)ranks);
  CHECK(osp_comm_all_reduce_sum(world, NULL, OSP_F32, 0) == OSP_OK);
  CHECK(failed_with(osp_comm_all_reduce_sum(world, exact, OSP_BF16, N), OSP_ERR_UNSUPPORTED, "only f32"));
  CHECK(failed_with(osp_comm_all_reduce_sum(world, exact, OSP_F32, -1), OSP_ERR_ARGUMENT, "negative"));

  /* With timing on the call waits for the device around itself; it is counted all the same. */
  osp_comm_set_timing(world, true);
  CHECK(osp_comm_all_reduce_sum(world, exact, OSP_F32, N) == OSP_OK);
  osp_comm_set_timing(world, false);
  counter = osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_REDUCE);
  CHECK(counter.calls == 6);
  CHECK(counter.seconds >= 0);
}

static void test_broadcast(osp_comm *world) {
  enum { BYTES = 300 };
  const int root = ranks - 1; /* not rank 0 wherever there are several */
  uint8_t data[BYTES];
  for (int i = 0; i < BYTES; i++) data[i] = me == root ? (uint8_t)(i * 7 + 3) : 0;
  osp_comm_reset_counters(world);
  CHECK(osp_comm_broadcast(world, data, BYTES, root) == OSP_OK);
  int wrong = 0;
  for (int i = 0; i < BYTES; i++) wrong += data[i] != (uint8_t)(i * 7 + 3);
  CHECK(wrong == 0);
  const osp_comm_counter counter = osp_comm_counter_of(world, OSP_COLLECTIVE_BROADCAST);
  CHECK(counter.calls == 1);
  CHECK(counter.bytes_sent == (me == root ? (int64_t)BYTES * (ranks - 1) : 0));
  CHECK(osp_comm_broadcast(world, NULL, 0, 0) == OSP_OK);
  CHECK(failed_with(osp_comm_broadcast(world, data, BYTES, ranks), OSP_ERR_ARGUMENT, "root"));
  CHECK(failed_with(osp_comm_broadcast(world, data, BYTES, -1), OSP_ERR_ARGUMENT, "root"));
  CHECK(failed_with(osp_comm_broadcast(NULL, data, BYTES, 0), OSP_ERR_ARGUMENT, "no communicator"));
}

/* Even and odd ranks, each group ordered by descending world rank (key = −rank). */
static void test_split(osp_comm *world) {
  const int color = me % 2;
  int members = 0, above = 0;
  float rank_sum = 0;
  for (int q = color; q < ranks; q += 2) {
    members++;
    above += q > me;
    rank_sum += (float)q;
  }
  osp_comm *half = NULL;
  CHECK(osp_comm_split(world, color, -me, &half) == OSP_OK);
  if (!half) return;
  CHECK(osp_comm_size(half) == members);
  CHECK(osp_comm_rank(half) == above);
  CHECK(osp_comm_kind_of(half) == osp_comm_kind_of(world));
  CHECK(osp_comm_device(half) == OSP_CPU);
  float value = (float)me;
  CHECK(osp_comm_all_reduce_sum(half, &value, OSP_F32, 1) == OSP_OK);
  CHECK(value == rank_sum);
  int top = me; /* the group's rank 0 is its highest world rank */
  CHECK(osp_comm_broadcast(half, &top, sizeof top, 0) == OSP_OK);
  CHECK(top == color + (members - 1) * 2);
  CHECK(osp_comm_counter_of(half, OSP_COLLECTIVE_ALL_REDUCE).calls == 1);
  CHECK(osp_comm_barrier(half) == OSP_OK);
  osp_comm_free(half);
  CHECK(failed_with(osp_comm_split(world, -1, 0, &half), OSP_ERR_ARGUMENT, "color"));
  CHECK(half == NULL);
}

static void test_gpu(osp_comm *world) {
  osp_comm *gpu = world;
  CHECK(failed_with(osp_comm_gpu(NULL, &gpu), OSP_ERR_ARGUMENT, "no communicator"));
  CHECK(gpu == NULL);
  /* On one rank only: ranks sharing a GPU would make NCCL fail or wait. Where this build or machine
   * has no GPU it must say so; where it has one, a single CUDA rank comes back. */
  if (ranks != 1) return;
  const osp_status status = osp_comm_gpu(world, &gpu);
  if (status == OSP_OK) {
    CHECK(gpu && osp_comm_device(gpu) != OSP_CPU && osp_comm_size(gpu) == 1);
    osp_comm_free(gpu);
  } else {
    CHECK(gpu == NULL && strlen(osp_last_error()) > 20);
  }
}

/* A part over 2 GiB at an offset over 2 GiB (MPI's int counts would overflow on both), from rank 0
 * to rank 1. The bytes before the offset are never touched, so they take no memory. */
static void test_large(osp_comm *world) {
  const int64_t bytes = ((int64_t)1 << 31) + 5, send_at = ((int64_t)1 << 31) + 3, recv_at = ((int64_t)1 << 31) + 7;
  uint8_t *buffer = malloc((size_t)((me == 0 ? send_at : recv_at) + bytes));
  CHECK(buffer != NULL);
  if (!buffer) return;
  int64_t send_bytes[2] = {0, me == 0 ? bytes : 0}, send_offset[2] = {0, send_at};
  int64_t recv_bytes[2] = {me == 1 ? bytes : 0, 0}, recv_offset[2] = {recv_at, 0};
  if (me == 0)
    for (int64_t i = 0; i < bytes; i++) buffer[send_at + i] = (uint8_t)(i * 131 + 7);
  osp_comm_reset_counters(world);
  const osp_status status = me == 0 ? osp_comm_all_to_all(world, buffer, send_bytes, send_offset, NULL, recv_bytes, recv_offset)
                                    : osp_comm_all_to_all(world, NULL, send_bytes, send_offset, buffer, recv_bytes, recv_offset);
  CHECK(status == OSP_OK);
  if (me == 1) {
    int64_t wrong = 0;
    for (int64_t i = 0; i < bytes; i++) wrong += buffer[recv_at + i] != (uint8_t)(i * 131 + 7);
    CHECK(wrong == 0);
  }
  CHECK(osp_comm_counter_of(world, OSP_COLLECTIVE_ALL_TO_ALL).bytes_sent == (me == 0 ? bytes : 0));
  free(buffer);
}

/* Replaces this rank's counts with the totals over all ranks. */
static void add_up_ranks(osp_comm *world) {
  float counts[2] = {(float)test_checks_passed, (float)test_checks_failed};
  if (osp_comm_all_reduce_sum(world, counts, OSP_F32, 2) != OSP_OK) {
    fprintf(stderr, "comm: adding up the ranks' counts failed: %s\n", osp_last_error());
    test_checks_failed++;
    return;
  }
  test_checks_passed = (int)counts[0];
  test_checks_failed = (int)counts[1];
}

int main(void) {
  osp_comm *world = NULL;
  if (osp_comm_world(&world) != OSP_OK) {
    fprintf(stderr, "comm: %s\n", osp_last_error());
    return 1;
  }
  me = osp_comm_rank(world);
  ranks = osp_comm_size(world);
  if (ranks > MAX_RANKS) {
    fprintf(stderr, "comm: this test runs on at most %d ranks, found %d\n", MAX_RANKS, ranks);
    return 1;
  }
  osp_comm *again = NULL;
  CHECK(osp_comm_world(&again) == OSP_OK && again == world);
  CHECK(ranks == 1 || osp_comm_kind_of(world) == OSP_COMM_MPI);
  CHECK(osp_comm_device(world) == OSP_CPU);
  CHECK(me >= 0 && me < ranks);
  CHECK(strcmp(osp_collective_name(OSP_COLLECTIVE_ALL_TO_ALL), "all_to_all") == 0);
  CHECK(strcmp(osp_collective_name(OSP_COLLECTIVE_BROADCAST), "broadcast") == 0);

  test_all_to_all(world);
  test_all_gather(world);
  test_all_reduce(world);
  test_broadcast(world);
  test_split(world);
  test_gpu(world);
  const char *large = getenv("OSP_COMM_TEST_LARGE");
  if (large && strcmp(large, "1") == 0 && ranks == 2) test_large(world);
  osp_comm_free(world); /* the world is osp_comm_finalize's to end: still usable */
  CHECK(osp_comm_barrier(world) == OSP_OK);

  const int failed_here = test_checks_failed;
  add_up_ranks(world);
  osp_comm_finalize();
  if (me != 0) return failed_here || test_checks_failed ? 1 : 0;
  return test_summary("comm");
}
