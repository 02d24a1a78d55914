# syntax=docker/dockerfile:1
#
# docker build -t aily_exporter \
#   --build-arg VERSION=$(git describe --tags --always) \
#   --build-arg REVISION=$(git rev-parse HEAD) \
#   --build-arg BRANCH=$(git rev-parse --abbrev-ref HEAD) \
#   --build-arg BUILD_DATE=$(date -u +%Y%m%d-%H:%M:%S) .
# docker run --rm -p 9851:9851 -p 127.0.0.1:9852:9852 aily_exporter --demo --demo.api-address=0.0.0.0:9852
# docker run -d -p 9851:9851 -v "$PWD/aily:/etc/aily_exporter:ro" -v aily-state:/data aily_exporter
# (mount the configuration's directory, not the file; docs/deployment.md, "Docker", says why)

# The same patched Go as the Makefile (GOTOOLCHAIN=go1.26.10).
FROM golang:1.26.10 AS build
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_USER=docker
ARG BUILD_DATE=unknown
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /aily_exporter -ldflags "-s -w \
      -X github.com/prometheus/common/version.Version=${VERSION} \
      -X github.com/prometheus/common/version.Revision=${REVISION} \
      -X github.com/prometheus/common/version.Branch=${BRANCH} \
      -X github.com/prometheus/common/version.BuildUser=${BUILD_USER} \
      -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
    .
# The state directory, owned by the nonroot user (65532) so that a volume
# mounted there starts writable; distroless has no shell to chown it later.
RUN mkdir -p /data && chown 65532:65532 /data

# distroless/static: CA certificates (the Feishu API is HTTPS) and tzdata,
# no shell; nonroot is user 65532.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /aily_exporter /aily_exporter
COPY --from=build --chown=65532:65532 /data /data
USER nonroot:nonroot
EXPOSE 9851
# The state across restarts (--storage.path): mount a volume here to keep it.
VOLUME /data
WORKDIR /etc/aily_exporter
ENTRYPOINT ["/aily_exporter"]
CMD ["--config.file=/etc/aily_exporter/aily.yml", "--storage.path=/data"]
