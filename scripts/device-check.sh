#!/usr/bin/env bash
# The GPU device check (docs/gpu.md, "The device check"): one script, run once on
# a machine with an NVIDIA GPU, the CUDA PJRT plugin (pip jax-cuda13-pjrt) and
# Python with torch, transformers and safetensors; no network, no Go toolchain.
#
#   make device-bundle                  # here: bin/device.tgz (cgo tether + test binaries)
#   bash scripts/device-check.sh        # there, from the repository root
#
# Every step has its own time budget (timeout) and the script goes on past a
# failed step. What comes back is under $OUT, at most 5 files:
#   summary.json, summary.md   every step's status and the measured numbers
#   steps.tsv                  step, exit status (124: over budget), ms, budget
#   logs.tar.gz                every step's log and raw results
#   hf-fixtures.tar.gz         engine/testdata/hf (to commit), when step 1 made it
#
# DEVICE_CHECK_BACKEND (default xla:cuda) and DEVICE_CHECK_SMALL=1 (tiny models,
# shorter runs) let the script itself be tried on a CPU machine; PYTHON picks the
# interpreter (default python3).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/device-check-out}
BACKEND=${DEVICE_CHECK_BACKEND:-xla:cuda}
SMALL=${DEVICE_CHECK_SMALL:-0}
PY=${PYTHON:-python3}
W=$(mktemp -d /tmp/device-check.XXXXXX)
LOGS=$W/logs
mkdir -p "$OUT" "$LOGS" "$W/bin" "$W/models"
STEPS=$LOGS/steps.tsv
: >"$STEPS"
T0=$(date +%s)

# The whole script must end within one device call (600 s at most): a step
# gets at most what is left before DEADLINE seconds, less RESERVE for the
# summary and the bundle, and is skipped (rc 125) when under 5 s are left.
DEADLINE=${DEVICE_CHECK_DEADLINE:-560}
RESERVE=25

# step NAME BUDGET_S COMMAND...: runs COMMAND under timeout, log in $LOGS/NAME.log,
# one line "name rc milliseconds budget_s" in steps.tsv (rc 124: over budget,
# 125: skipped).
step() {
	local name=$1 budget=$2
	shift 2
	local start rc left
	left=$((DEADLINE - RESERVE - ($(date +%s) - T0)))
	[ "$name" = summary ] && left=$((left + RESERVE))
	if [ "$left" -lt 5 ]; then
		echo "skipped: the device call's time is spent" >"$LOGS/$name.log"
		printf '%s\t125\t0\t%s\n' "$name" "$budget" >>"$STEPS"
		echo "== $name skipped (no time left)"
		return 0
	fi
	[ "$budget" -gt "$left" ] && budget=$left
	start=$(date +%s%N)
	echo "== $name (budget ${budget}s) at $(($(date +%s) - T0))s"
	timeout -k 5 "$budget" "$@" >"$LOGS/$name.log" 2>&1
	rc=$?
	printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((($(date +%s%N) - start) / 1000000))" "$budget" >>"$STEPS"
	echo "   rc $rc; last lines:"
	tail -n 3 "$LOGS/$name.log" | sed 's/^/   | /'
	return 0
}

# --- the binaries built here (make device-bundle) ---
if [ -f bin/device.tgz ]; then
	tar -C "$W/bin" -xzf bin/device.tgz
elif [ -x bin/tether-cgo ]; then
	cp bin/tether-cgo "$W/bin/" && cp -r bin/tests "$W/bin/" 2>/dev/null
fi
TETHER=$W/bin/tether-cgo
TESTS=$W/bin/tests
[ -x "$TETHER" ] || { echo "no bin/device.tgz or bin/tether-cgo: run make device-bundle first" >"$LOGS/setup.log"; }

# Random-weight models with real configurations (bf16), or tiny ones.
if [ "$SMALL" = 1 ]; then
	tiny() { "$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["vocab_size"]=max(c["vocab_size"],320); json.dump(c,open(sys.argv[2],"w"))' "$1" "$2"; }
	tiny engine/testdata/reference/llama/config.json "$W/small-llama.json"
	tiny engine/testdata/reference/qwen2/config.json "$W/small-qwen.json"
	tiny engine/testdata/reference/mistral/config.json "$W/small-mistral.json"
	CFG_1B=$W/small-llama.json CFG_QWEN=$W/small-qwen.json CFG_7B=$W/small-mistral.json
	BATCHES=1,8 PREFILLS="16 64" DECODE=8 HF_NEW=8 HF_PROMPT=16 HF_BATCHES=1,4 PERSONA_TOKENS=8 CAP_LAYERS=0:2
else
	CFG_1B=weights/testdata/configs/llama-3.2-1b.json
	CFG_QWEN=weights/testdata/configs/qwen2.5-1.5b.json
	CFG_7B=weights/testdata/configs/mistral-7b-v0.1.json
	BATCHES=1,8,32,64 PREFILLS="512 2048" DECODE=64 HF_NEW=128 HF_PROMPT=128 HF_BATCHES=1,32 PERSONA_TOKENS=48 CAP_LAYERS=4:12
fi
M1B=$W/models/llama-1b MQWEN=$W/models/qwen-1.5b M7B=$W/models/mistral-7b

# 0. The machine.
step env 10 bash -c "date -u; uname -a; nvidia-smi; $PY -c 'import sys,torch,transformers; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available()); print(\"transformers\", transformers.__version__)'; $PY -m pip list 2>/dev/null | grep -i -E 'jax|nvidia|torch|transformers|safetensors'; ls -la $TETHER $TESTS; $TETHER version"

# 1. Hugging Face fixtures (CPU), then the go backend against them.
step hf_fixtures 60 bash -c "CUDA_VISIBLE_DEVICES= $PY scripts/hf_fixtures.py --tether $TETHER --out engine/testdata/hf && cd engine && $TESTS/engine.test -test.run 'HuggingFaceFixtures|PyTorchReferenceFixtures' -test.v"

# 2. The plugin found without any environment variable.
step info 20 env -u PJRT_PLUGIN_LIBRARY_PATH -u LD_LIBRARY_PATH -u XLA_FLAGS "$TETHER" info --backend "$BACKEND" --json

# 3. The engine, steer and probe tests on the GPU; capping and telemetry CPU vs GPU.
step test_engine 45 bash -c "cd engine && TETHER_TEST_BACKEND=$BACKEND $TESTS/engine.test -test.v -test.timeout 40s"
step test_steer 30 bash -c "cd steer && TETHER_TEST_BACKEND=$BACKEND $TESTS/steer.test -test.v -test.timeout 25s"
step test_probe 25 bash -c "cd probe && TETHER_TEST_BACKEND=$BACKEND $TESTS/probe.test -test.v -test.timeout 20s"
step test_same 20 bash -c "cd steer && TETHER_TEST_COMPARE_BACKEND=$BACKEND $TESTS/steer.test -test.run TestSameOnOtherBackend -test.v"

# 4. tether bench perf (bf16), the floor from the device bandwidth measured now.
step bandwidth 15 "$PY" scripts/hf_compare.py --modes none --bandwidth --json "$LOGS/bandwidth.json"
BW=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bandwidth_gbps"])' "$LOGS/bandwidth.json" 2>/dev/null || echo 0)
bench() { # bench NAME CONFIG DIR BUDGET BATCHES "PREFILL..."
	local name=$1 cfg=$2 dir=$3 budget=$4 batches=$5 prefills=$6
	step "bench_$name" "$budget" bash -c "
		[ -f $dir/model.safetensors ] || $TETHER testmodel --config $cfg --dtype bf16 --out $dir || exit 1
		set -- $prefills
		$TETHER bench perf --model $dir --backend $BACKEND --batches $batches --prefill \$1 --decode $DECODE --repeats 2 --bandwidth-gbps $BW --json > $LOGS/bench_$name.json || exit 1
		shift
		for p in \"\$@\"; do $TETHER bench perf --model $dir --backend $BACKEND --batches 1 --prefill \$p --decode 2 --repeats 2 --bandwidth-gbps $BW --json > $LOGS/bench_${name}_prefill\$p.json || exit 1; done"
}
bench llama-1b "$CFG_1B" "$M1B" 65 "$BATCHES" "$PREFILLS"
bench qwen-1.5b "$CFG_QWEN" "$MQWEN" 45 "$BATCHES" "$PREFILLS"
# The size path: writing 14.5 GB of random weights takes most of this budget.
bench mistral-7b "$CFG_7B" "$M7B" 50 1,8 "${PREFILLS%% *}"
rm -rf "$M7B" "$MQWEN" # disk

# 5. transformers on the same weights: eager and torch.compile.
step hf_compare 90 "$PY" scripts/hf_compare.py --model "$M1B" --batches "$HF_BATCHES" --prompt "$HF_PROMPT" --new "$HF_NEW" --json "$LOGS/hf_compare.json"

# 6. A short persona run, an axis and a capped generation on the 1B model.
step persona 50 bash -c "
	set -e
	time $TETHER persona run --model $M1B --out $W/run --backend $BACKEND --roles-limit 2 --prompts-limit 1 --questions-limit 4 --max-tokens $PERSONA_TOKENS --batch 8
	$TETHER axis build --run $W/run --out $W/run/axis.safetensors --backend $BACKEND --calibrate-unit rollout
	$TETHER generate --model $M1B --backend $BACKEND --prompt 'Tell me about yourself.' --chat -n 32 --temperature 0 --axis $W/run/axis.safetensors --cap-layers $CAP_LAYERS --cap-percentile 25 --json > $LOGS/capped.json
	cat $LOGS/capped.json"

# --- bundle ---
step summary 15 "$PY" scripts/device_summary.py --logs "$LOGS" --out "$OUT"
cp "$STEPS" "$OUT/steps.tsv" # even if the summary failed
tar -C "$W" -czf "$OUT/logs.tar.gz" logs
if ls engine/testdata/hf/*/reference.safetensors >/dev/null 2>&1; then
	tar -czf "$OUT/hf-fixtures.tar.gz" engine/testdata/hf
fi
echo "device check done in $(($(date +%s) - T0))s; results in $OUT:"
ls -la "$OUT"
cat "$OUT/summary.md" 2>/dev/null
rm -rf "$W"
