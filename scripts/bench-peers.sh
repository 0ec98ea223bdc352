#!/usr/bin/env bash
# bench-peers.sh: tether against llama.cpp's llama-bench on the same SmolLM2-135M-shaped random
# weights, in one run, alternating, ROUNDS rounds; prints each engine's medians (with their range)
# and the same-round ratios (median and range): tether f32 decode / llama.cpp F32 decode, tether
# bf16 decode / llama.cpp F16 decode, tether prefill / llama.cpp prefill (f32 and bf16), and
# tether's capped/uncapped decode. Not part of `make test` or CI: it needs ../shared/peers
# (llama-bench.sh builds llama-bench from npm's prebuilt llama.cpp) and numpy for the GGUF writer.
#
#   make bench-peers                 # 3 rounds
#   ROUNDS=5 THREADS=2 scripts/bench-peers.sh
#
# Results (the raw JSON lines of every run, page-cache.txt and summary.md) go to
# .tether/bench/peers/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PEERS=${PEERS:-../shared/peers}
PY=${PY:-/usr/bin/python3}
TETHER=${TETHER:-bin/tether}
DIR=.tether/bench
OUT=$DIR/peers
CONFIG=weights/testdata/configs/smollm2-135m-instruct.json

die() { echo "bench-peers: $*" >&2; exit 1; }
[ -f "$PEERS/llama-bench.sh" ] || die "$PEERS/llama-bench.sh not found (set PEERS to the peers folder)"
[ -x "$TETHER" ] || die "$TETHER not found: run make build"
"$PY" -c 'import numpy' 2>/dev/null || die "$PY has no numpy (apt-get install python3-numpy, or set PY)"

LB=$(bash "$PEERS/llama-bench.sh" | tail -n 1)
[ -x "$LB" ] || die "llama-bench.sh did not give a binary (got '$LB')"

mkdir -p "$OUT"
F32=$DIR/smollm2-135m
BF16=$DIR/smollm2-135m-bf16
[ -f "$F32/model.safetensors" ] || "$TETHER" testmodel --config "$CONFIG" --out "$F32" --seed 1
[ -f "$BF16/model.safetensors" ] || "$TETHER" testmodel --config "$CONFIG" --out "$BF16" --seed 1 --dtype bf16
[ -f "$OUT/model-f32.gguf" ] || "$PY" "$PEERS/gguf_write.py" "$F32" "$OUT/model-f32.gguf" f32
[ -f "$OUT/model-f16.gguf" ] || "$PY" "$PEERS/gguf_write.py" "$F32" "$OUT/model-f16.gguf" f16

rm -f "$OUT"/*.jsonl
lscpu > "$OUT/lscpu.txt"
# Both engines map their weights; put the four files in the same page-cache state (dropped, then
# read back in large pieces: large folios) so that neither is measured on 4 KiB mappings.
"$PY" scripts/page_cache.py "$F32/model.safetensors" "$BF16/model.safetensors" "$OUT/model-f32.gguf" "$OUT/model-f16.gguf" >"$OUT/page-cache.txt"
export GOMAXPROCS=$THREADS
for r in $(seq 1 "$ROUNDS"); do
	echo "bench-peers: round $r of $ROUNDS" >&2
	"$TETHER" bench perf --model "$F32" --weights-dtype f32 --steer --json | sed "s/^{/{\"round\":$r,/" >>"$OUT/tether-f32.jsonl"
	"$LB" -m "$OUT/model-f32.gguf" -p 128,512 -n 64 -t "$THREADS" -r 3 -o jsonl 2>/dev/null | sed "s/^{/{\"round\":$r,/" >>"$OUT/llama-f32.jsonl"
	"$TETHER" bench perf --model "$BF16" --weights-dtype bf16 --json | sed "s/^{/{\"round\":$r,/" >>"$OUT/tether-bf16.jsonl"
	"$LB" -m "$OUT/model-f16.gguf" -p 128,512 -n 64 -t "$THREADS" -r 3 -o jsonl 2>/dev/null | sed "s/^{/{\"round\":$r,/" >>"$OUT/llama-f16.jsonl"
done
"$PY" scripts/bench_peers_summary.py "$OUT" | tee "$OUT/summary.md"
