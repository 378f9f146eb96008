/* The world in a build without MPI (cmake -DOSP_MPI=OFF, as on a machine without MPI): one
 * rank. Launched by mpirun as one of several, it refuses to start rather than run as many copies
 * that each believe they are alone. CMake compiles this file instead of comm_mpi.c. */
#include "core/status.h"
#include "parallel/comm_internal.h"

static osp_comm *world;

osp_status osp_comm_world(osp_comm **out) {
  if (!out) return osp_fail(OSP_ERR_ARGUMENT, "osp_comm_world: world is NULL");
  *out = world;
  if (world) return OSP_OK;
  const int launched = osp_comm_launch_size();
  if (launched > 1)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "osp_comm_world: launched as one of %d ranks, but this osp was built without MPI "
                    "(-DOSP_MPI=OFF), so each rank would run alone; rebuild with libopenmpi-dev "
                    "installed (scripts/setup.sh) and MPI on", launched);
  OSP_TRY(osp_comm_single(OSP_CPU, &world));
  world->is_world = true;
  *out = world;
  return OSP_OK;
}

void osp_comm_finalize(void) {
  osp_comm_destroy(world);
  world = NULL;
}

void osp_comm_abort(int exit_code) {}
