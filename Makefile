# tether: build, test, demo, bench, lint, fuzz. `make help` lists the targets.
GO      ?= go
BIN     := bin/tether
# Fuzz time per target for `make fuzz`.
FUZZTIME ?= 30s

.PHONY: help build test demo bench bench-peers lint fuzz clean device-binary device-bundle

help:
	@echo "make build   build bin/tether (pure Go, CGO not required)"
	@echo "make test    vet and run every test (what CI runs)"
	@echo "make demo    run the demo on the bundled stories260K model"
	@echo "make bench   Go benchmarks plus 'tether bench perf' on a SmolLM2-135M-shaped random model"
	@echo "make bench-peers  tether against llama.cpp's llama-bench on the same weights (needs ../shared/peers; ROUNDS=3)"
	@echo "make lint    gofmt, go vet, and go mod tidy -diff (go.mod/go.sum as tidy leaves them)"
	@echo "make fuzz    run every fuzz target for FUZZTIME (default 30s) each"
	@echo "make device-binary  bin/tether-cgo: tether with cgo, for the XLA (GPU) backend (needs gcc)"
	@echo "make device-bundle  bin/device.tgz: bin/tether-cgo and the engine, steer and probe test binaries, for scripts/device-check.sh"

build:
	$(GO) build -o $(BIN) ./cmd/tether

test:
	$(GO) vet ./...
	$(GO) test -timeout 14m ./...
	# The engine-facing packages again on the default CPU backend (the run above uses simplego).
	TETHER_TEST_BACKEND=cpu $(GO) test -timeout 10m ./engine/ ./steer/ ./probe/ ./serve/

demo: build
	./$(BIN) demo

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./tokenizer/ ./engine/ ./bench/
	./$(BIN) testmodel --config weights/testdata/configs/smollm2-135m-instruct.json --out .tether/bench/smollm2-135m --seed 1
	./$(BIN) bench perf --model .tether/bench/smollm2-135m --json

bench-peers: build
	bash scripts/bench-peers.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

# Every FuzzXxx function in the tree, each run for FUZZTIME.
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		dir=$$(dirname $$f); \
		for name in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
			echo "== $$dir $$name"; $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) ./$$dir; \
		done; \
	done

# The GPU machine has no Go toolchain: scripts/device-check.sh runs these
# prebuilt linux/amd64 cgo binaries (stripped, gzipped to fit a 64 MiB carry;
# the test binaries keep their source paths, which some tests read testdata by).
device-binary:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags="-s -w" -o bin/tether-cgo ./cmd/tether

device-bundle: device-binary
	@mkdir -p bin/tests
	for p in engine steer probe; do CGO_ENABLED=1 $(GO) test -c -ldflags="-s -w" -o bin/tests/$$p.test ./$$p/ || exit 1; done
	tar -C bin -czf bin/device.tgz tether-cgo tests
	@ls -la bin/device.tgz

clean:
	rm -rf bin .tether
