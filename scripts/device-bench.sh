#!/usr/bin/env bash
# The fast CPU path's figures on the accelerator machine (issue 5), in one device call.
#
#   scripts/device-bench.sh build   here: static tilelab and the simd test binary into .devbuild/h7/
#   scripts/device-bench.sh ab      there: kernel families side by side (FAMILIES), kernels and whole model
#   scripts/device-bench.sh fuse    there: pool section cost, fused decode ops against the unfused graph
#                                   (TILELAB_FUSE=0/1) and huge-page weights against the file mapping
#                                   (TILELAB_HUGEPAGES=0/1), PAUSE in the pool's spin loops (TILELAB_POOL_PAUSE=0/1)
#   scripts/device-bench.sh run     there (device tool, carry [".devbuild/h7"]): machine facts, kernel benchmarks
#                                   (single thread and all threads, against read bandwidth), synth bench-moe in
#                                   Q4_0 and Q8_0, then tilelab bench pp512/tg128 per mode; results under $OUT
#
# Environment for run: THREADS (default 16), REPS (default 5), MODES (default cpu), SKIP_SIMD=1, AB=1 (also pp512 with TILELAB_SIMD=avx512-vnni-noprep).
set -uo pipefail
cd "$(dirname "$0")/.."
B=.devbuild/h7 # a folder of its own: other device scripts share .devbuild

case "${1:-}" in
build)
	set -e
	mkdir -p $B
	CGO_ENABLED=0 go build -buildvcs=auto -o $B/tilelab ./cmd/tilelab # stamps the commit even where GOFLAGS turns it off
	CGO_ENABLED=0 go test -c -o $B/simd.test ./engine/cpu/simd
	CGO_ENABLED=0 go test -c -o $B/cpu.test ./engine/cpu
	ls -la $B
	;;
run)
	OUT=${OUT:-out}
	mkdir -p "$OUT"
	T=${THREADS:-16}
	R=${REPS:-5}
	MODES=${MODES:-cpu}
	{ lscpu | head -20; echo "amx_tile CPUs: $(grep -c amx_tile /proc/cpuinfo)"; nvidia-smi -L; } >"$OUT/machine.txt" 2>&1
	cat "$OUT/machine.txt"
	if [ -z "${SKIP_SIMD:-}" ]; then
		{
			echo "== single thread"
			$B/simd.test -test.run '^$' -test.bench 'MemRead$|GEMV$|GEMVHugePages' -test.benchtime 10x -test.cpu 1 -test.v
			echo "== single thread, weights in cache (-test.short: the kernels' compute speed alone; if far above the"
			echo "   from-memory figure, streaming is latency-bound, else the unpacking is the limit)"
			$B/simd.test -test.short -test.run '^$' -test.bench 'GEMV$' -test.benchtime 2000x -test.cpu 1
			echo "== $T threads"
			$B/simd.test -test.run '^$' -test.bench 'Parallel' -test.benchtime 5x -test.cpu "$T"
			echo "== GEMM, single thread"
			$B/simd.test -test.run '^$' -test.bench 'GEMM' -test.benchtime 3x -test.cpu 1
		} 2>&1 | grep -v '^goos\|^goarch\|^pkg' | tee "$OUT/simd.txt"
	fi
	for q in q4_0 q8_0; do
		[ -f /tmp/bm-$q.gguf ] || $B/tilelab synth bench-moe --quant $q -o /tmp/bm-$q.gguf -q
	done
	# Q4_0: prompt and generation measured (and profiled) apart, so each profile shows one phase; Q8_0 together.
	echo "== bench q4_0"
	timeout 200 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 0 -r "$R" -t "$T" --mode "$MODES" -q \
		--json "$OUT/bench-q4_0-pp.json" --cpuprofile "$OUT/q4_0-pp.prof"
	timeout 200 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 0 -n 128 -r "$R" -t "$T" --mode "$MODES" -q \
		--json "$OUT/bench-q4_0-tg.json" --cpuprofile "$OUT/q4_0-tg.prof"
	if [ -n "${AB:-}" ]; then
		echo "== bench q4_0 pp512, many-row products without prepared activations"
		TILELAB_SIMD=avx512-vnni-noprep timeout 100 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 0 -r "$R" -t "$T" -q
	fi
	echo "== bench q8_0"
	timeout 200 $B/tilelab bench -m /tmp/bm-q8_0.gguf -p 512 -n 128 -r "$R" -t "$T" --mode "$MODES" -q \
		--json "$OUT/bench-q8_0.json"
	;;
fuse)
	# Fused decode ops (engine/model/forward.go) against the unfused graph, interleaved: one layer's projections
	# (sections = barriers per layer), then tg128/pp512 in Q4_0 and tg128 in Q8_0 with TILELAB_FUSE=0 and 1.
	OUT=${OUT:-out}
	mkdir -p "$OUT"
	T=${THREADS:-16}
	R=${REPS:-5}
	# The fixed cost of a parallel section, whether workers spin or park (GOMAXPROCS below the thread count, e.g.
	# from a cgroup CPU limit, makes them park and every section pay for wake-ups), then one layer's projections.
	{
		echo "cgroup cpu.max: $(cat /sys/fs/cgroup/cpu.max 2>&1), nproc $(nproc)"
		$B/cpu.test -test.run '^$' -test.bench 'PoolRun' -test.count 3 -test.cpu "$T" -test.v
		$B/cpu.test -test.run '^$' -test.bench 'DecodeLayerFused' -test.benchtime 200x -test.count 3 -test.cpu "$T"
	} 2>&1 | grep -v '^goos\|^goarch\|^pkg' | tee "$OUT/fused-layer.txt"
	for q in q4_0 q8_0; do
		[ -f /tmp/bm-$q.gguf ] || $B/tilelab synth bench-moe --quant $q -o /tmp/bm-$q.gguf -q
	done
	# Weights in transparent huge pages (engine/cpu/hugepages.go) against the file mapping's 4 KiB pages, and the
	# pool's spin loops with and without PAUSE (engine/pool).
	for i in 1 2; do
		for h in 0 1; do
			echo "== TILELAB_HUGEPAGES=$h q4_0 tg128 (round $i)"
			TILELAB_HUGEPAGES=$h timeout 100 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 0 -n 128 -r "$R" -t "$T" -q \
				--json "$OUT/huge$h-q4_0-$i.json"
		done
		for pz in 0 1; do
			echo "== TILELAB_POOL_PAUSE=$pz q4_0 tg128 (round $i)"
			TILELAB_POOL_PAUSE=$pz timeout 100 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 0 -n 128 -r "$R" -t "$T" -q \
				--json "$OUT/pause$pz-q4_0-$i.json"
		done
	done
	for i in 1 2; do
		for f in 0 1; do
			echo "== TILELAB_FUSE=$f q4_0 (round $i)"
			TILELAB_FUSE=$f timeout 150 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 128 -r "$R" -t "$T" -q \
				--json "$OUT/fuse$f-q4_0-$i.json"
			echo "== TILELAB_FUSE=$f q8_0 (round $i)"
			TILELAB_FUSE=$f timeout 100 $B/tilelab bench -m /tmp/bm-q8_0.gguf -p 0 -n 128 -r "$R" -t "$T" -q \
				--json "$OUT/fuse$f-q8_0-$i.json"
		done
	done
	;;
ab)
	# Kernel families side by side: single-row products one thread and all threads, then whole-model pp512/tg128
	# (Q4_0) per family named in FAMILIES, and Q8_0 with the default family.
	OUT=${OUT:-out}
	mkdir -p "$OUT"
	T=${THREADS:-16}
	R=${REPS:-5}
	{ lscpu | head -20; echo "amx_tile CPUs: $(grep -c amx_tile /proc/cpuinfo)"; nvidia-smi -L; } >"$OUT/machine.txt" 2>&1
	{
		$B/simd.test -test.run '^$' -test.bench 'MemRead$|GEMV$' -test.benchtime 20x -test.cpu 1
		$B/simd.test -test.run '^$' -test.bench 'Parallel' -test.benchtime 20x -test.cpu "$T"
	} 2>&1 | grep -v '^goos\|^goarch\|^pkg' | tee "$OUT/simd.txt"
	for q in q4_0 q8_0; do
		[ -f /tmp/bm-$q.gguf ] || $B/tilelab synth bench-moe --quant $q -o /tmp/bm-$q.gguf -q
	done
	for f in ${FAMILIES:-avx512-vnni avx512-vnni-cvt avx512-vnni-zmm}; do
		echo "== bench q4_0, TILELAB_SIMD=$f"
		TILELAB_SIMD=$f timeout 100 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 128 -r "$R" -t "$T" -q --json "$OUT/q4_0-$f.json"
	done
	echo "== bench q8_0"
	timeout 100 $B/tilelab bench -m /tmp/bm-q8_0.gguf -p 512 -n 128 -r "$R" -t "$T" -q --json "$OUT/q8_0.json"
	;;
*)
	echo "usage: $0 build|run|ab|fuse" >&2
	exit 2
	;;
esac
