#!/usr/bin/env bash
# Fetches the embedded ClickHouse engine (chDB) from the npm registry, checks its
# sha256 and installs libchdb.so where fleetprof looks for it.
#   root:      /usr/local/lib/libchdb.so
#   otherwise: $HOME/.local/lib/libchdb.so
# Override the destination with FLEETPROF_CHDB_LIB=/path/libchdb.so.
set -euo pipefail
version=26.5.3
want=4330da79405733f7572f27c1442f46c03a08301f00859dce0368645731b1e1dc
if [ -n "${FLEETPROF_CHDB_LIB:-}" ]; then dest=$FLEETPROF_CHDB_LIB
elif [ "$(id -u)" = 0 ]; then dest=/usr/local/lib/libchdb.so
else dest=$HOME/.local/lib/libchdb.so; fi

if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ]; then
  echo "chdb: $dest is already chDB $version"; exit 0
fi
command -v npm >/dev/null || { echo "chdb: npm is needed (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "chdb: fetching @chdb/lib-linux-x64-gnu@$version (166 MB) ..."
(cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$version" >/dev/null)
tar -xzf "$tmp"/chdb-lib-linux-x64-gnu-$version.tgz -C "$tmp" package/libchdb.so
got=$(sha256sum "$tmp/package/libchdb.so" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "chdb: checksum mismatch for libchdb.so: got $got, want $want" >&2; exit 1
fi
mkdir -p "$(dirname "$dest")"
mv "$tmp/package/libchdb.so" "$dest.tmp" && mv "$dest.tmp" "$dest"
echo "chdb: installed $dest"
