#!/usr/bin/env bash
# Installs the Debian packages ringstore builds and tests with, if any is
# missing. Idempotent; needs root (apt-get) only when something is missing.
set -euo pipefail

packages=(
  bazel-bootstrap
  g++
  clang-14
  libclang-rt-14-dev
  libgrpc++-dev
  protobuf-compiler-grpc
  protobuf-compiler
  libprotobuf-dev
  libabsl-dev
  liburing-dev
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libisal-dev
  libssl-dev
  libgoogle-perftools-dev
  openssl
  python3-grpcio
  python3-protobuf
  libcpp-httplib-dev
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root to install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
