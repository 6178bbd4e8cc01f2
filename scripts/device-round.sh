#!/usr/bin/env bash
# The usual round on the accelerator machine, in one device call: build here, run there, read a short table.
#
#   scripts/device-round.sh build   here: static binaries into .devbuild/ (no Go, no network there), and print the
#                                   device call to make
#   scripts/device-round.sh run     there (the device tool runs it): machine facts; the AMX tests on the real tile
#                                   unit; the AMX figures (AMX_FIGURES, default gemm,moe,small,calibrate); synth
#                                   bench-moe in Q4_0 and Q8_0; tilelab bench pp512/tg128 in cpu and cpu+amx mode;
#                                   with SEED=1 also experiments/seed-table.tlab on the full Qwen3-30B-A3B shape,
#                                   with amx=attn (the seed's policy) and amx=all (experts in AMX too).
#                                   Logs and JSON land in $OUT/round.tar.gz; the summary is the last thing printed.
#
# One session has 30 minutes of device time: make this one call, not many small ones. Name the machine with every
# figure (the run prints lscpu, the AMX flag count and the GPU first; a call can land on a host without AMX).
# The per-topic scripts it uses, for deeper dives: scripts/device-amx.sh, scripts/device-bench.sh (ab, fuse).
set -uo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
build)
	set -e
	scripts/device-amx.sh >/dev/null
	scripts/device-bench.sh build >/dev/null
	du -sh .devbuild/amx .devbuild/h7
	cat <<'CALL'
device tool call:
  command: bash scripts/device-round.sh run        (SEED=1 bash ... adds both seed tables, about 4-5 minutes;
           the whole call then comes close to the 600 s a call may take)
  carry:   [".devbuild/amx", ".devbuild/h7"]
  timeout_s: 600
CALL
	;;
run)
	# Everything is written to a folder of its own and comes back as one tarball (the device tool returns a few
	# files only), with the summary and the AMX figures beside it.
	DEST=${OUT:-out}
	mkdir -p "$DEST"
	OUT=$(mktemp -d)
	export OUT
	T=${THREADS:-16}
	R=${REPS:-3}
	B=.devbuild/h7
	{
		lscpu | head -20
		echo "amx_tile CPUs: $(grep -c amx_tile /proc/cpuinfo)"
	# A CPU quota starves a pool of 16 spinning workers (cgroup v2 cpu.max, or v1 cfs quota/period).
	echo "cpu quota: $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null) / $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null)")"
		nvidia-smi -L 2>&1
	} | tee "$OUT/machine.txt"
	export HOME=${HOME:-/tmp} # the AMX calibration and the synth cache live under the user's cache folder

	echo "== AMX tests on this machine"
	(cd amx && timeout 150 ../.devbuild/amx/amx.test -test.count=1 -test.v >"$OUT/amx-tests.log" 2>&1)
	amx_tests=$?
	grep -E '^(--- FAIL|FAIL|ok|PASS)|panic' "$OUT/amx-tests.log" | head -20

	echo "== AMX figures (${AMX_FIGURES:=gemm,tasks,moe,small,decode,calibrate})"
	(cd amx && AMX_FIGURES=$AMX_FIGURES timeout -s QUIT 200 ../.devbuild/amx/amxdev.test -test.run 'DeviceFigures' \
		-test.v -test.timeout 190s >"$OUT/amx-figures.log" 2>&1)
	amx_figures=$?
	grep -v '^=== RUN' "$OUT/amx-figures.log" | tail -60

	for q in q4_0 q8_0; do
		[ -f /tmp/bm-$q.gguf ] || $B/tilelab synth bench-moe --quant $q -o /tmp/bm-$q.gguf -q
	done
	for q in q4_0 q8_0; do
		echo "== bench bench-moe $q"
		timeout 150 $B/tilelab bench -m /tmp/bm-$q.gguf -p 512 -n 128 -r "$R" -t "$T" --mode cpu,cpu+amx -q \
			--json "$OUT/bench-$q.json" >"$OUT/bench-$q.md" 2>&1
		echo "rc=$?" >>"$OUT/bench-$q.md"
	done

	# The F16 KV cache (llama.cpp's default) against float32: tg at a longer context, where attention reads more.
	for kv in f32 f16; do
		timeout 120 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 2048 -n 128 -r 2 -t "$T" --kv $kv -q >"$OUT/bench-kv-$kv.md" 2>&1
	done

	# Where decode time goes: one tg128 run profiled (read it here with go tool pprof .devbuild/h7/tilelab FILE),
	# and the fixed cost of a parallel section.
	timeout 100 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 0 -n 128 -r 2 -t "$T" -q --cpuprofile "$OUT/q4_0-tg.prof" \
		>"$OUT/profile-run.md" 2>&1
	[ -x $B/cpu.test ] && timeout 60 $B/cpu.test -test.run '^$' -test.bench 'PoolRun' -test.count 2 -test.cpu "$T" \
		>"$OUT/pool.txt" 2>&1

	if [ -n "${SEED:-}" ]; then
		echo "== seed table (experiments/seed-table.tlab, full qwen3-30b-a3b)"
		timeout 240 $B/tilelab run experiments/seed-table.tlab --out "$OUT/seed" reps=2 >"$OUT/seed.log" 2>&1
		echo "seed-table rc=$?"
		echo "== the same with the MoE experts in AMX too (amx=all)"
		timeout 200 $B/tilelab run experiments/seed-table.tlab --out "$OUT/seed-all" reps=2 amx=all >"$OUT/seed-all.log" 2>&1
		echo "seed-table amx=all rc=$?"
	fi

	echo
	{
		echo "== summary ($(grep -m1 'Model name' "$OUT/machine.txt" | sed 's/.*: *//'), $T threads)"
		echo "amx tests rc=$amx_tests, amx figures rc=$amx_figures"
		for q in q4_0 q8_0 kv-f32 kv-f16; do
			grep -E '^\| (model|.*(pp|tg)[0-9])' "$OUT/bench-$q.md" || tail -3 "$OUT/bench-$q.md"
		done
		for d in seed seed-all; do
			[ -f "$OUT/$d/report.md" ] && grep -E '^\| *(mode|cpu)' "$OUT/$d/report.md" | head -12
		done
	} | tee "$OUT/summary.txt"
	tar -C "$OUT" -czf "$DEST/round.tar.gz" .
	cp "$OUT/summary.txt" "$DEST/"
	[ -f "$OUT/amx-figures.md" ] && cp "$OUT/amx-figures.md" "$DEST/"
	;;
*)
	echo "usage: $0 build|run" >&2
	exit 2
	;;
esac
