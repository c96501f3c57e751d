# Builds the portcullis image: `make docker-build IMG=...`.

# The builder is pinned by tag to the Go version the project is developed
# with. Release tooling should pin it by digest as well
# (golang:1.26.8@sha256:...), so that a re-pushed tag cannot change a build.
FROM golang:1.26.8 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Module downloads get their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source change.
COPY go.mod go.sum ./
RUN go mod download

# The sources the binary is built from. config/ is needed too: config/crd is
# a Go package that embeds the CRDs controller-gen writes to config/crd/bases,
# which the operator installs at start.
COPY api/ api/
COPY cmd/ cmd/
COPY config/ config/
COPY controllers/ controllers/
COPY internal/ internal/
COPY webhooks/ webhooks/

# A static binary (no cgo) for the distroless base below. GOARCH follows the
# platform being built (docker buildx --platform); empty means the host's.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o portcullis ./cmd/portcullis

# Distroless: no shell, no package manager, nothing to exploit but the binary.
# See https://github.com/GoogleContainerTools/distroless. Pin by digest in
# release tooling, as above.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/portcullis /portcullis
# The nonroot user of the distroless image, numeric so that the kubelet can
# enforce runAsNonRoot.
USER 65532:65532

ENTRYPOINT ["/portcullis"]
