#!/usr/bin/env bash
# Builds the container image ringstore:<version> offline, from scratch, with
# buildah: the Bazel-built ringstore-server (the entrypoint) and ringstore
# CLI, the shared libraries they load (found by ldd), the CA certificates, and
# /etc/passwd and /etc/group naming user 65532. No shell, no package manager.
# The image goes into the local container storage (podman sees it as
# localhost/ringstore:<version>) and into an OCI archive that any registry or
# runtime can load:
#
#   skopeo copy oci-archive:ringstore-0.1.0.oci.tar docker://REGISTRY/ringstore:0.1.0
#
# Usage: deploy/image/build.sh [--server=BIN --cli=BIN] [--out=FILE] [--tag=NAME]
#   --server, --cli  use these binaries instead of `bazel build -c opt` ones
#   --out            the OCI archive (default ./ringstore-<version>.oci.tar)
#   --tag            the image name (default ringstore:<version>, where
#                    <version> is what `ringstore-server --version` prints)
# Prints the image name, its ID and the archive's path on the last lines.
#
# Runs as root (buildah mounts the image's file system). Where the storage
# driver overlay cannot work (nested containers, this project's CI VMs), set
# STORAGE_DRIVER=vfs; CONTAINERS_STORAGE_CONF picks another storage.conf.
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }

server= cli= out= tag=
for arg in "$@"; do
  case $arg in
    --server=*) server=${arg#*=} ;;
    --cli=*) cli=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --tag=*) tag=${arg#*=} ;;
    *) die "unknown argument $arg (see the comment at the top of $0)" ;;
  esac
done
command -v buildah >/dev/null || die "buildah is not installed (bash deploy/install-deps.sh)"

repo=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "$server" ] && [ -z "$cli" ]; then
  (cd "$repo" && bazel build -c opt --jobs=2 //server:ringstore-server //client:ringstore) ||
    die "bazel build failed"
  bin=$(cd "$repo" && bazel info -c opt bazel-bin 2>/dev/null)
  server=$bin/server/ringstore-server
  cli=$bin/client/ringstore
fi
[ -x "$server" ] || die "no server binary at '$server'"
[ -x "$cli" ] || die "no CLI binary at '$cli'"

version=$("$server" --version) || die "$server --version failed"
tag=${tag:-ringstore:$version}
out=${out:-$PWD/ringstore-$version.oci.tar}

stage=$(mktemp -d "${TMPDIR:-/tmp}/ringstore-image.XXXXXX")
ctr=
cleanup() {
  [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT

# The binaries, stripped (an -c opt build keeps its symbol table).
mkdir -p "$stage/usr/local/bin"
install -m 0755 "$server" "$stage/usr/local/bin/ringstore-server"
install -m 0755 "$cli" "$stage/usr/local/bin/ringstore"
strip --strip-unneeded "$stage/usr/local/bin/ringstore-server" "$stage/usr/local/bin/ringstore"

# Every shared library either binary loads, at the path the loader found it
# (a soname link becomes a plain copy of its target), and the loader itself.
libs=$(for binary in "$server" "$cli"; do ldd "$binary"; done |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' | sort -u)
[ -n "$libs" ] || die "ldd found no libraries"
for lib in $libs; do
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$lib" "$stage$lib"
done

# CA certificates (gRPC's TLS roots; the CLI's --tls_ca names its own).
mkdir -p "$stage/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/" ||
  die "no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"

# The one user, 65532 (the Kubernetes manifests run as it), and a resolver
# configuration for the CLI's host names.
printf 'ringstore:x:65532:65532:ringstore:/nonexistent:/nonexistent\n' >"$stage/etc/passwd"
printf 'ringstore:x:65532:\n' >"$stage/etc/group"
printf 'hosts: files dns\n' >"$stage/etc/nsswitch.conf"

# The data directory, for `podman run` without a volume; a pod mounts its
# volume here.
mkdir -p "$stage/data"
chown 65532:65532 "$stage/data"
chmod 0750 "$stage/data"

ctr=$(buildah from scratch)
# Copied through a mount (not `buildah copy`, which makes everything root's)
# so /data keeps its owner.
mnt=$(buildah mount "$ctr")
cp -a "$stage/." "$mnt/"
buildah umount "$ctr" >/dev/null
buildah config \
  --entrypoint '["/usr/local/bin/ringstore-server"]' \
  --cmd '["--listen=0.0.0.0:50051", "--root=/data"]' \
  --user 65532:65532 \
  --env PATH=/usr/local/bin \
  --workingdir /data \
  --port 50051 \
  --label org.opencontainers.image.title=ringstore \
  --label org.opencontainers.image.version="$version" \
  --created-by "deploy/image/build.sh" \
  "$ctr"
# The creation time is the commit's ($SOURCE_DATE_EPOCH if set), not the
# clock's: the same binaries give the same image ID.
created=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}
id=$(buildah commit --quiet --rm --timestamp "$created" "$ctr" "$tag")
ctr=
rm -f "$out"
buildah push --quiet "$tag" "oci-archive:$out:$tag"

echo "image $tag"
echo "id $id"
echo "archive $out ($(du -h "$out" | cut -f1))"
