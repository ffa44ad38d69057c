# fleetprof aggregator image: the binary (cgo, for the embedded chDB loader) and
# libchdb.so for embedded mode, on Debian slim, running as a non-root user.
# For machines that can pull from Docker Hub:
#   docker build -t ghcr.io/fleetprof/fleetprof:0.1.0 .
# `make image` builds the same image (config and file layout) without Docker Hub or a
# container engine, from this host's files (scripts/imagebuild); deploy/image_test.go
# checks that its USER, WORKDIR, VOLUME, EXPOSE, ENTRYPOINT and CMD equal this file's.
# The entrypoint is the binary so the chart's args ("aggregator ...", "agent ...")
# replace the default command.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /out/fleetprof ./cmd/fleetprof

FROM node:20-bookworm-slim AS chdb
COPY scripts/fetch-chdb.sh /fetch-chdb.sh
RUN FLEETPROF_CHDB_LIB=/out/libchdb.so bash /fetch-chdb.sh

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --home-dir /data --create-home fleetprof
COPY --from=build /out/fleetprof /usr/local/bin/fleetprof
COPY --from=chdb /out/libchdb.so /usr/local/lib/libchdb.so
USER 65532:65532
WORKDIR /data
VOLUME /data
EXPOSE 7070 7071
ENTRYPOINT ["/usr/local/bin/fleetprof"]
CMD ["aggregator", "--grpc", "0.0.0.0:7071", "--http", "0.0.0.0:7070", "--storage", "embedded:/data"]
