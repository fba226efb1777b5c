# mobileone serve in a container: a static binary (CGO_ENABLED=0) on
# distroless/static (CA certificates, tzdata, a nonroot user; no shell, no
# libc). See docs/serving.md.
#
#   docker build -t mobileone .
#   docker run --rm -p 8080:8080 mobileone                        # the built-in Fashion-MNIST model
#   docker run --rm -p 8080:8080 -v $PWD/models:/models:ro mobileone -w /models/mobileone_s1.pth.tar
#
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64 -t mobileone .
# (cross-compiled by Go on the build platform; the kernels pick AVX-512, AVX2
# or pure Go at run time, so one amd64 image fits every x86-64 machine).

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
# Dependencies first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /out/mobileone ./cmd/mobileone

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mobileone /usr/local/bin/mobileone
USER nonroot:nonroot
EXPOSE 8080
# The exec form: the server is PID 1 and gets SIGTERM itself (it drains,
# then exits 0). Arguments after the image name replace CMD.
ENTRYPOINT ["/usr/local/bin/mobileone", "serve"]
CMD ["--addr", ":8080", "--log-format", "json"]
