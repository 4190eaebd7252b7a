#!/usr/bin/env bash
# Installs the Debian packages ringstore builds and tests with, if any is
# missing, and the npm packages of the Kubernetes schema check. Idempotent;
# needs root (apt-get, npm ci into /usr/local/lib) only when something is
# missing.
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
  ca-certificates
  python3-grpcio
  python3-protobuf
  libcpp-httplib-dev
  prometheus
  python3-yaml
  buildah
  podman
  runc
  skopeo
)
# kubectl and Node.js may come from elsewhere (another kubectl package
# conflicts with Debian's kubernetes-client): only the missing ones.
command -v kubectl >/dev/null || packages+=(kubernetes-client)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi

if [ ${#missing[@]} -gt 0 ]; then
  [ ${#sudo[@]} -eq 0 ] || command -v sudo >/dev/null ||
    { echo "install-deps: run as root to install ${missing[*]}" >&2; exit 1; }
  echo "install-deps: installing ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The Kubernetes schema check's npm packages (deploy/k8s/schema/, pinned by
# its package-lock.json) go to $RINGSTORE_NPM_DIR, where the test looks.
schema=$(cd "$(dirname "$0")/k8s/schema" && pwd)
npm_dir=${RINGSTORE_NPM_DIR:-/usr/local/lib/ringstore-npm}
if ! cmp -s "$schema/package-lock.json" "$npm_dir/package-lock.json" ||
   [ ! -d "$npm_dir/node_modules" ]; then
  echo "install-deps: npm ci of deploy/k8s/schema into $npm_dir" >&2
  "${sudo[@]}" mkdir -p "$npm_dir"
  "${sudo[@]}" cp "$schema/package.json" "$schema/package-lock.json" "$npm_dir/"
  "${sudo[@]}" npm ci --prefix "$npm_dir" --no-audit --no-fund --loglevel=error
fi
