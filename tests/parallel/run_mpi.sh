#!/usr/bin/env bash
# The communicator's unit test (BUILD_DIR/test_comm) as 2, 3 and 4 MPI ranks on this machine, and
# once more as 2 ranks with a part over 2 GiB at an offset over 2 GiB (about 4.5 GB of memory, ~20 s).
# Prints each run's summary as "comm (N ranks): P passed, F failed" (rank 0 adds up every rank's
# checks); exits non-zero when a run fails, or hangs for 5 minutes.
# Usage: tests/parallel/run_mpi.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: tests/parallel/run_mpi.sh BUILD_DIR}
test_comm=$build/test_comm
[ -x "$test_comm" ] || { echo "run_mpi: no $test_comm (build it: cmake --build $build --target test_comm)"; exit 1; }
command -v mpirun >/dev/null || { echo "run_mpi: no mpirun: run scripts/setup.sh (apt package openmpi-bin)"; exit 1; }
# Open MPI refuses to start as root without both of these (CI runs as root); harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

failed=0
run() { # run LABEL RANKS [VARIABLE=VALUE ...]
  local label=$1 ranks=$2 out rc
  shift 2
  out=$(env "$@" timeout 300 mpirun -np "$ranks" --oversubscribe "$test_comm" 2>&1)
  rc=$?
  sed -E "s/^comm: /comm ($label): /" <<< "$out"
  if [ "$rc" -ne 0 ] || ! grep -qE '^comm: [0-9]+ passed, 0 failed$' <<< "$out"; then
    [ "$rc" -eq 124 ] && rc="124: timed out"
    echo "comm ($label): FAILED (exit $rc)"
    failed=1
  fi
}

run "2 ranks" 2
run "3 ranks" 3
run "4 ranks" 4
run "2 ranks with parts over 2 GiB" 2 OSP_COMM_TEST_LARGE=1
exit $failed
