#!/usr/bin/env bash
# The linters CI runs (make lint): go vet, gofmt and staticcheck. staticcheck
# comes from the Go module proxy at a pinned version, built once into a cache
# directory outside the repository and reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2
GO=${GO:-go}

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting (gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi

$GO vet ./...

bindir="${XDG_CACHE_HOME:-$HOME/.cache}/deskhook-tools/staticcheck-$STATICCHECK_VERSION"
if [ ! -x "$bindir/staticcheck" ]; then
  mkdir -p "$bindir"
  GOBIN="$bindir" $GO install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
"$bindir/staticcheck" ./...
echo "lint: go vet, gofmt and staticcheck $STATICCHECK_VERSION found nothing"
