package bpf

//go:generate ./generate.sh
