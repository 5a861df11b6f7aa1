# `make test` is the project's test command (README, .ci/run).
GO ?= go

.PHONY: test test-deps demo bench

test: test-deps
	$(GO) test -race -timeout 40m ./...

test-deps:
	./scripts/test-deps.sh

demo:
	$(GO) run ./cmd/deskhook demo
