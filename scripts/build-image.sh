#!/usr/bin/env bash
# Builds the OCI image from the Dockerfile with the first container engine that
# answers (podman, buildah, docker); says which were tried when none does.
set -euo pipefail
image=${IMAGE:-ghcr.io/fleetprof/fleetprof:0.1.0}
if command -v podman >/dev/null && podman info >/dev/null 2>&1; then exec podman build -t "$image" .; fi
if command -v buildah >/dev/null; then exec buildah bud -t "$image" .; fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then exec docker build -t "$image" .; fi
echo "image: no container engine runs here (podman/buildah not installed; docker: $(command -v docker >/dev/null && echo 'client only, no daemon' || echo 'not installed'))." >&2
echo "image: install podman or buildah (apt-get install podman) and rerun make image" >&2
exit 1
