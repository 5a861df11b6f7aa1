# `make test` is the project's test command (README, .ci/run): lint, then go test.
GO ?= go

# The version stamped into the binary (`deskhook version`, the User-Agent):
# the git description of the checkout, e.g. v1.2.0, v1.2.0-3-g1a2b3c4 or
# 1a2b3c4-dirty.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)
# Where `make build` puts the binary.
BIN ?= bin/deskhook

# The container image (`make image`): built with buildah, no daemon needed.
IMAGE ?= deskhook:$(VERSION)
IMAGE_CONTEXT ?= build/image
BUILDAH ?= buildah
BUILDAH_FLAGS ?= --storage-driver vfs
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

.PHONY: test test-deps build image lint demo bench screenshots

test: test-deps lint
	$(GO) test -race -timeout 40m ./...

test-deps:
	./scripts/test-deps.sh

# A static binary (no cgo): it runs on any Linux, in an image FROM scratch too.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/deskhook

# The image holds the static binary and the CA bundle (for https endpoints),
# nothing else: deploy/container/Containerfile.
image:
	rm -rf $(IMAGE_CONTEXT)
	mkdir -p $(IMAGE_CONTEXT)
	$(MAKE) --no-print-directory build BIN=$(IMAGE_CONTEXT)/deskhook VERSION=$(VERSION)
	cp $(CA_BUNDLE) $(IMAGE_CONTEXT)/ca-certificates.crt
	cp deploy/container/Containerfile $(IMAGE_CONTEXT)/Containerfile
	$(BUILDAH) $(BUILDAH_FLAGS) bud --isolation chroot --build-arg VERSION=$(VERSION) -t $(IMAGE) $(IMAGE_CONTEXT)

lint:
	./scripts/lint.sh

demo:
	$(GO) run ./cmd/deskhook demo

# The README's screenshots of the console (docs/console/*.png), taken in
# Chromium from the demo's data.
screenshots:
	$(GO) test -count=1 -run TestConsoleScreenshots ./cmd/deskhook -update
