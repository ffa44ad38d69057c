#!/usr/bin/env bash
# Installs everything fleetprof needs to build, run and test on Debian 12:
# Debian packages, the chDB engine (embedded ClickHouse) and Go modules.
# Idempotent; run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

pkgs=(
  gcc make git ca-certificates         # build, cgo
  clang llvm libbpf-dev bpftool         # eBPF code generation (make generate)
  linux-perf                            # perf, the reference for agent agreement benchmarks
  clickhouse-server clickhouse-client   # ClickHouse server backend (tests start their own)
  chromium chromium-driver              # UI tests (headless)
  libcap2-bin util-linux                # capsh/setpriv: least-privilege agent tests
  libc6-dbg                             # separate debug files, symbolization tests
  podman crun netavark iptables         # make image loads into podman; the image test runs it
)
missing=()
# npm fetches chDB; a machine may already have Node.js and npm from another source
# (then Debian's npm would conflict with it), so only a missing command asks for it.
command -v npm >/dev/null 2>&1 || missing+=(npm)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package starts a server on install; tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now clickhouse-server >/dev/null 2>&1 || true; fi

./scripts/fetch-chdb.sh

if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go 1.26 is needed (https://go.dev/doc/install); /usr/local/go/bin must be on PATH" >&2
  exit 1
fi
go mod download
(cd tools && go mod download)
echo "setup: done"
