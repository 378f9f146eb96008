/* CPU ranks through MPI (Open MPI's mpirun launches them; any MPI-3 library builds). Buffers are
 * host memory.
 *
 * Sizes: MPI counts and displacements are ints, and Open MPI 4.1 has no MPI-4 large-count calls.
 * So every part of a collective travels as ONE element of a derived datatype built for it: the
 * part's bytes at their absolute address (used with MPI_BOTTOM; MPI_Aint is 64-bit), as whole
 * blocks of 1 GiB and the rest. Counts and offsets of any size then work, in a single MPI call,
 * and no rank needs to agree with the others first on how to split them. All-to-all and
 * all-gather are one MPI_Alltoallw each (an all-gather is an all-to-all that sends every rank the
 * same bytes, so uneven parts need no MPI_Allgatherv and its int displacements).
 *
 * Determinism: all-reduce does not call MPI_Allreduce, whose algorithm (and so the order of the
 * float sums) Open MPI picks by message size, process count and placement. It is a reduce-scatter
 * and an all-gather of our own: rank r receives every rank's copy of the r-th slice of the buffer,
 * adds them in rank order 0, 1, ..., size − 1, and sends the sum to everyone. Each value is thus
 * summed once, in an order that depends on nothing but the rank numbers, so every rank gets the
 * same bits on every run, and they are the bits of a plain loop over the ranks. Each rank sends
 * 2·(size − 1)/size of the buffer, as a ring all-reduce does. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/status.h"
#include "parallel/comm_internal.h"

enum { BLOCK_BYTES = 1 << 30 }; /* a derived datatype's whole blocks; MPI counts them in ints */

typedef struct {
  MPI_Comm comm;
  MPI_Datatype block; /* BLOCK_BYTES contiguous bytes */
  /* One MPI_Alltoallw's arguments, sized for the communicator once: entries [0, size) are the
   * parts sent to each rank, [size, 2·size) those received from each. */
  osp_comm_part *parts;
  int *counts, *displacements;
  MPI_Datatype *types;
  float *scratch; /* all-reduce: every rank's copy of this rank's slice */
  int64_t scratch_floats;
} mpi_state;

static struct {
  osp_comm *world;
  bool initialized_here; /* osp_comm_finalize ends MPI only then */
} mpi;

static osp_status mpi_check(int error, const char *what) {
  if (error == MPI_SUCCESS) return OSP_OK;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0, error_class = 0;
  if (MPI_Error_string(error, text, &length) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", error);
  MPI_Error_class(error, &error_class);
  if (error_class == MPI_ERR_TRUNCATE)
    return osp_fail(OSP_ERR_ARGUMENT, "mpi: %s: %s (a rank sent more bytes than its peer expected: the "
                    "ranks' byte counts disagree)", what, text);
  return osp_fail(OSP_ERR_IO, "mpi: %s: %s", what, text);
}

/* The datatype of one part (bytes > 0), to be used with MPI_BOTTOM. */
static int part_type(const mpi_state *s, osp_comm_part part, MPI_Datatype *type) {
  MPI_Aint at = 0;
  int error = MPI_Get_address(part.at, &at);
  const int lengths[2] = {(int)(part.bytes / BLOCK_BYTES), (int)(part.bytes % BLOCK_BYTES)};
  const MPI_Aint starts[2] = {at, at + (MPI_Aint)lengths[0] * BLOCK_BYTES};
  const MPI_Datatype types[2] = {s->block, MPI_BYTE};
  if (error == MPI_SUCCESS) error = MPI_Type_create_struct(2, lengths, starts, types, type);
  if (error == MPI_SUCCESS) error = MPI_Type_commit(type);
  if (error != MPI_SUCCESS) *type = MPI_BYTE; /* nothing for the caller to free */
  return error;
}

/* Sends s->parts[q] to rank q and receives s->parts[size + q] from it, for every q (itself too). */
static osp_status exchange(mpi_state *s, int size, const char *what) {
  int error = MPI_SUCCESS;
  for (int i = 0; i < 2 * size; i++) {
    s->counts[i] = s->parts[i].bytes > 0;
    s->types[i] = MPI_BYTE;
    if (s->counts[i] && error == MPI_SUCCESS) error = part_type(s, s->parts[i], &s->types[i]);
  }
  if (error == MPI_SUCCESS)
    error = MPI_Alltoallw(MPI_BOTTOM, s->counts, s->displacements, s->types, MPI_BOTTOM, s->counts + size,
                          s->displacements + size, s->types + size, s->comm);
  for (int i = 0; i < 2 * size; i++)
    if (s->types[i] != MPI_BYTE) MPI_Type_free(&s->types[i]);
  return mpi_check(error, what);
}

static mpi_state *state_of(osp_comm *comm) { return comm->impl; }

static osp_status mpi_all_to_all(osp_comm *comm, const void *send, const int64_t *send_bytes,
                                 const int64_t *send_offset, void *recv, const int64_t *recv_bytes,
                                 const int64_t *recv_offset) {
  mpi_state *s = state_of(comm);
  osp_comm_parts_all_to_all(comm->size, send, send_bytes, send_offset, recv, recv_bytes, recv_offset, s->parts);
  return exchange(s, comm->size, "all-to-all");
}

static osp_status mpi_all_gather(osp_comm *comm, const void *send, int64_t bytes, void *recv,
                                 const int64_t *recv_bytes, const int64_t *recv_offset) {
  mpi_state *s = state_of(comm);
  osp_comm_parts_all_gather(comm->size, send, bytes, recv, recv_bytes, recv_offset, s->parts);
  return exchange(s, comm->size, "all-gather");
}

/* Rank q's slice of `count` values: the first count mod size ranks get one value more. */
static int64_t slice_start(int64_t count, int size, int q) {
  const int64_t rest = count % size;
  return q * (count / size) + (q < rest ? q : rest);
}

static int64_t slice_length(int64_t count, int size, int q) {
  return slice_start(count, size, q + 1) - slice_start(count, size, q);
}

static osp_status mpi_all_reduce_sum(osp_comm *comm, float *data, int64_t count, int64_t *bytes_sent) {
  mpi_state *s = state_of(comm);
  const int size = comm->size, me = comm->rank;
  const int64_t f32 = sizeof(float), mine = slice_length(count, size, me), start = slice_start(count, size, me);
  if (s->scratch_floats < mine * size) {
    float *grown = realloc(s->scratch, (size_t)(mine * size) * sizeof(float));
    if (!grown)
      return osp_fail(OSP_ERR_MEMORY, "mpi: all-reduce: no memory for %lld floats of scratch",
                      (long long)(mine * size));
    s->scratch = grown;
    s->scratch_floats = mine * size;
  }
  /* Reduce-scatter: rank q's copy of my slice lands in scratch row q. */
  for (int q = 0; q < size; q++) {
    s->parts[q] = osp_comm_part_at(data, slice_start(count, size, q) * f32, slice_length(count, size, q) * f32);
    s->parts[size + q] = osp_comm_part_at(s->scratch, q * mine * f32, mine * f32);
  }
  OSP_TRY(exchange(s, size, "all-reduce (reduce-scatter)"));
  /* ((copy 0 + copy 1) + copy 2) + ..., row by row so that memory streams. */
  float *sum = data + start;
  for (int64_t i = 0; i < mine; i++) sum[i] = s->scratch[i];
  for (int q = 1; q < size; q++)
    for (int64_t i = 0; i < mine; i++) sum[i] += s->scratch[q * mine + i];
  /* All-gather: my summed slice to every other rank, theirs into place (nothing to myself). */
  for (int q = 0; q < size; q++) {
    const int64_t theirs = q == me ? 0 : slice_length(count, size, q);
    s->parts[q] = osp_comm_part_at(data, start * f32, q == me ? 0 : mine * f32);
    s->parts[size + q] = osp_comm_part_at(data, slice_start(count, size, q) * f32, theirs * f32);
  }
  OSP_TRY(exchange(s, size, "all-reduce (all-gather)"));
  *bytes_sent = ((count - mine) + mine * (size - 1)) * f32;
  return OSP_OK;
}

static osp_status mpi_broadcast(osp_comm *comm, void *data, int64_t bytes, int root) {
  mpi_state *s = state_of(comm);
  MPI_Datatype type;
  int error = part_type(s, (osp_comm_part){data, bytes}, &type);
  if (error == MPI_SUCCESS) {
    error = MPI_Bcast(MPI_BOTTOM, 1, type, root, s->comm);
    MPI_Type_free(&type);
  }
  return mpi_check(error, "broadcast");
}

static osp_status mpi_barrier(osp_comm *comm) { return mpi_check(MPI_Barrier(state_of(comm)->comm), "barrier"); }

static osp_status wrap(MPI_Comm handle, osp_comm **out);

static osp_status mpi_split(osp_comm *comm, int color, int key, osp_comm **out) {
  MPI_Comm handle;
  OSP_TRY(mpi_check(MPI_Comm_split(state_of(comm)->comm, color, key, &handle), "splitting a communicator"));
  return wrap(handle, out);
}

static void mpi_release(void *impl) {
  mpi_state *s = impl;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    if (s->block != MPI_DATATYPE_NULL) MPI_Type_free(&s->block);
    if (s->comm != MPI_COMM_NULL) MPI_Comm_free(&s->comm);
  }
  free(s->parts);
  free(s->counts);
  free(s->displacements);
  free(s->types);
  free(s->scratch);
  free(s);
}

static const osp_comm_vtable mpi_vtable = {
    .all_to_all = mpi_all_to_all,
    .all_gather = mpi_all_gather,
    .all_reduce_sum = mpi_all_reduce_sum,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .split = mpi_split,
    .release = mpi_release,
};

/* A communicator that owns `handle`; its errors come back as values, not as an abort. */
static osp_status wrap(MPI_Comm handle, osp_comm **out) {
  mpi_state *s = calloc(1, sizeof *s);
  if (!s) {
    MPI_Comm_free(&handle);
    return osp_fail(OSP_ERR_MEMORY, "mpi: no memory for a communicator");
  }
  s->comm = handle;
  s->block = MPI_DATATYPE_NULL;
  int rank = 0, size = 0;
  int error = MPI_Comm_set_errhandler(handle, MPI_ERRORS_RETURN);
  if (error == MPI_SUCCESS) error = MPI_Comm_rank(handle, &rank);
  if (error == MPI_SUCCESS) error = MPI_Comm_size(handle, &size);
  if (error == MPI_SUCCESS) error = MPI_Type_contiguous(BLOCK_BYTES, MPI_BYTE, &s->block);
  if (error == MPI_SUCCESS) error = MPI_Type_commit(&s->block);
  if (error != MPI_SUCCESS) {
    mpi_release(s);
    return mpi_check(error, "setting up a communicator");
  }
  s->parts = calloc(2 * (size_t)size, sizeof *s->parts);
  s->counts = calloc(2 * (size_t)size, sizeof *s->counts);
  s->displacements = calloc(2 * (size_t)size, sizeof *s->displacements); /* all 0: parts are absolute */
  s->types = calloc(2 * (size_t)size, sizeof *s->types);
  if (!s->parts || !s->counts || !s->displacements || !s->types) {
    mpi_release(s);
    return osp_fail(OSP_ERR_MEMORY, "mpi: no memory for a communicator of %d ranks", size);
  }
  return osp_comm_create(&mpi_vtable, s, OSP_COMM_MPI, rank, size, OSP_CPU, out);
}

osp_status osp_comm_world(osp_comm **world) {
  if (!world) return osp_fail(OSP_ERR_ARGUMENT, "osp_comm_world: world is NULL");
  *world = mpi.world;
  if (mpi.world) return OSP_OK;
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    return osp_fail(OSP_ERR_UNSUPPORTED, "osp_comm_world: MPI has been finalized (osp_comm_finalize) and cannot start again");
  if (!initialized && osp_comm_launch_size() == 0) {
    OSP_TRY(osp_comm_single(OSP_CPU, &mpi.world));
  } else {
    if (!initialized) {
      /* Only the thread that started MPI calls it (OpenMP's and the dataset's threads never do). */
      int provided = 0;
      OSP_TRY(mpi_check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "starting MPI"));
      mpi.initialized_here = true;
    }
    MPI_Comm handle;
    OSP_TRY(mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &handle), "copying MPI_COMM_WORLD"));
    OSP_TRY(wrap(handle, &mpi.world));
  }
  mpi.world->is_world = true;
  *world = mpi.world;
  return OSP_OK;
}

void osp_comm_finalize(void) {
  osp_comm_destroy(mpi.world);
  mpi.world = NULL;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (mpi.initialized_here && !finalized) MPI_Finalize();
  mpi.initialized_here = false;
}

void osp_comm_abort(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
}
