// Command imagebuild assembles the fleetprof aggregator OCI image from files on this
// host: the cgo fleetprof binary, libchdb.so for embedded mode, the shared libraries
// their ELF headers name (and the dynamic loader), a passwd/group with the non-root
// user 65532, /data owned by it, /tmp and the CA bundle. It needs no container engine
// and no registry, so `make image` works where only the package registries are
// reachable; the Dockerfile is the same image for machines that can pull from Docker
// Hub. The result is a docker-archive tarball that `podman load` and `docker load` read.
//
//	go run ./scripts/imagebuild -binary bin/fleetprof -chdb /usr/local/lib/libchdb.so \
//	    -tag ghcr.io/fleetprof/fleetprof:0.1.0 -out bin/fleetprof-image.tar
package main
