# popgate's build and test entry points. `make test` is the single command
# CI runs (.ci/run): lint, unit tests with the race detector, then the
# integration tests against real Dovecot and clamd, which it installs
# (integration/setup.sh) and starts (integration/start.sh) when needed.
# Both scripts are idempotent and quick when there is nothing to do.

GO ?= go
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo "$$($(GO) env GOPATH | cut -d: -f1)/bin/staticcheck")
# Integration tests move 50 MiB messages and run load tests: be generous.
IT_TIMEOUT ?= 30m
# Extra flags for the integration go test run, e.g. IT_FLAGS='-v -run Env'.
IT_FLAGS ?=

.PHONY: test setup lint unit integration build

test: setup lint unit integration

# Installs the test dependencies (apt-get, staticcheck) when missing.
setup:
	bash integration/setup.sh

build:
	$(GO) build -o popgate .

# The integration tag is set so the integration tests are vetted too; it
# changes nothing else.
lint:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt -l lists files that need formatting:"; echo "$$files"; exit 1; fi
	$(GO) vet -tags integration ./...
	$(STATICCHECK) -tags integration ./...

unit:
	$(GO) test -race ./...

# Every package's integration-tagged tests: the end-to-end suite in
# integration/, and the real-clamd and Pebble tests of filters/clamav and
# tlsconf. Unit tests run again here without -race; they are quick.
integration: setup
	bash integration/start.sh
	$(GO) test -tags integration -count=1 -timeout $(IT_TIMEOUT) $(IT_FLAGS) ./...
