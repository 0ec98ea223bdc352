# tether: build, test, demo, bench, lint, fuzz. `make help` lists the targets.
GO      ?= go
BIN     := bin/tether
# Fuzz time per target for `make fuzz`.
FUZZTIME ?= 30s

.PHONY: help build test demo bench lint fuzz clean

help:
	@echo "make build   build bin/tether (pure Go, CGO not required)"
	@echo "make test    vet and run every test (what CI runs)"
	@echo "make demo    run the demo on the bundled stories260K model"
	@echo "make bench   Go benchmarks plus 'tether bench perf' on a SmolLM2-135M-shaped random model"
	@echo "make lint    gofmt, go vet, and go mod tidy -diff (go.mod/go.sum as tidy leaves them)"
	@echo "make fuzz    run every fuzz target for FUZZTIME (default 30s) each"

build:
	$(GO) build -o $(BIN) ./cmd/tether

test:
	$(GO) vet ./...
	$(GO) test -timeout 14m ./...

demo: build
	./$(BIN) demo

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./tokenizer/ ./engine/ ./bench/
	./$(BIN) testmodel --config weights/testdata/configs/smollm2-135m-instruct.json --out .tether/bench/smollm2-135m --seed 1
	./$(BIN) bench perf --model .tether/bench/smollm2-135m --json

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

clean:
	rm -rf bin .tether
