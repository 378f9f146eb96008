#!/usr/bin/env bash
# Installs what OSP needs on a fresh Debian machine. Idempotent: a second run only checks.
#   scripts/setup.sh          build dependencies (compiler, CMake, OpenBLAS, OpenMP, jansson, FFmpeg,
#                             Open MPI)
#   scripts/setup.sh --test   also the test dependencies: clang (sanitizers, libFuzzer) and a Python
#                             venv with torch, diffusers, transformers and safetensors for the
#                             reference tests, cached in $OSP_VENV (default ~/.cache/osp-venv)
set -euo pipefail

packages=(build-essential cmake pkg-config libopenblas-openmp-dev libjansson-dev
          libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libopenmpi-dev openmpi-bin)
[ "${1:-}" = "--test" ] && packages+=(clang libclang-rt-dev python3 python3-venv)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ "${1:-}" = "--test" ] || exit 0

# The reference stacks, pinned so that a reference never moves under a test.
venv=${OSP_VENV:-$HOME/.cache/osp-venv}
requirements="torch==2.15.0 diffusers==0.42.1 transformers==5.23.0 safetensors==0.8.0 sentencepiece==0.2.3 protobuf==7.36.2 numpy"
stamp="$venv/.osp-requirements"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$requirements" ]; then
  echo "setup: creating the reference venv in $venv (torch, diffusers, transformers, safetensors)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q $requirements
  echo "$requirements" > "$stamp"
fi
