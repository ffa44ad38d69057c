#!/bin/sh
# Regenerates the bpf2go output (profiler_*_bpfel.go and .o) from profiler.bpf.c.
#
#   ./generate.sh                    # compile with the committed vmlinux.h
#   REGEN_VMLINUX=1 ./generate.sh    # first re-dump vmlinux.h from this kernel's BTF
#
# Output depends only on the sources, clang's version (Debian clang 14) and
# bpf2go's version, not on the checkout path, so `make check-generated` can diff it.
set -eu
cd "$(dirname "$0")"

if [ "${REGEN_VMLINUX:-0}" = 1 ]; then
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h.tmp
	mv vmlinux.h.tmp vmlinux.h
fi

BPF2GO_CC="${BPF2GO_CC:-clang}" BPF2GO_STRIP="${BPF2GO_STRIP:-llvm-strip}" \
	GOPACKAGE=bpf go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 \
	-go-package bpf \
	-target amd64,arm64 \
	-type event \
	Profiler profiler.bpf.c -- -I. -Wall -Werror
