#!/usr/bin/env bash
# Builds the aggregator OCI image from this host's files with no container engine and
# no registry (only the package registries are reachable where fleetprof is built):
# the cgo binary, libchdb.so from make setup and the shared libraries they need, put
# together by scripts/imagebuild into a docker-archive tarball ($IMAGE_TAR), which is
# then loaded into podman's (else docker's) local store when one is installed.
# IMAGE_LOAD=0 only writes the tarball; FLEETPROF_BINARY=path uses that binary instead
# of building one. With Docker Hub access, `docker build .` builds
# the same image from the Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:-ghcr.io/fleetprof/fleetprof:0.1.0}
out=${IMAGE_TAR:-bin/fleetprof-image.tar}
go=${GO:-go}
lib=${FLEETPROF_CHDB_LIB:-/usr/local/lib/libchdb.so}
[ -f "$lib" ] || { echo "image: $lib not found: run make setup (scripts/fetch-chdb.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
bin=${FLEETPROF_BINARY:-}
if [ -z "$bin" ]; then
  bin=$work/fleetprof
  CGO_ENABLED=1 "$go" build -trimpath -o "$bin" ./cmd/fleetprof
fi
# File times and the config's creation time come from the last commit, so the same
# commit gives the same image digest.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)} \
  "$go" run ./scripts/imagebuild -binary "$bin" -chdb "$lib" -tag "$image" -out "$out"
echo "image: wrote $image to $out"

[ "${IMAGE_LOAD:-1}" = 0 ] && exit 0
if command -v podman >/dev/null; then
  podman load -q -i "$out"
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker load -q -i "$out"
else
  echo "image: no podman or docker daemon here; load it elsewhere with podman load -i $out" >&2
fi
