// Package tools pins the code generators and linters the Makefile runs (buf,
// protoc-gen-go, protoc-gen-go-grpc, bpf2go, golangci-lint) in a module of their own,
// so the product's go.mod carries none of their dependencies.
package tools
