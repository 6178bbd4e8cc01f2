#!/usr/bin/env bash
# One device call for this session's open questions (run there: bash scripts/device-probe.sh, carry
# [".devbuild/amx", ".devbuild/h7"] after scripts/device-round.sh build): single-row prefetch A/B (GEMV from memory,
# tg128), the first-repetition slowdown of pp512, the AMX int8 task-size grid, a tg128 CPU profile. Everything
# lands in $OUT/probe.tar.gz (the device tool returns a few files only) and the summary is printed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
W=$(mktemp -d)
B=.devbuild/h7
T=${THREADS:-16}
{
	lscpu | head -20
	echo "amx_tile CPUs: $(grep -c amx_tile /proc/cpuinfo)"
	nvidia-smi -L 2>&1
	echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled) defrag: $(cat /sys/kernel/mm/transparent_hugepage/defrag)"
	echo "cgroup cpu.max: $(cat /sys/fs/cgroup/cpu.max 2>&1), nproc $(nproc)"
} | tee "$W/machine.txt"
export HOME=${HOME:-/tmp}
for q in q4_0 q8_0; do
	[ -f /tmp/bm-$q.gguf ] || $B/tilelab synth bench-moe --quant $q -o /tmp/bm-$q.gguf -q
done
echo "== GEMV single thread, from memory"
$B/simd.test -test.run '^$' -test.bench 'MemRead$|GEMV$' -test.benchtime 10x -test.cpu 1 2>&1 | grep -E 'MemRead|vnni' | tee "$W/gemv1.txt"
echo "== GEMV $T threads"
$B/simd.test -test.run '^$' -test.bench 'Parallel' -test.benchtime 5x -test.cpu "$T" 2>&1 | grep -E 'MemRead|vnni' | tee "$W/gemvT.txt"
echo "== AMX task grid"
(cd amx && AMX_FIGURES=tasks timeout 120 ../.devbuild/amx/amxdev.test -test.run DeviceFigures -test.v >"$W/amx-tasks.log" 2>&1)
grep -E '^\|' amx/amx-figures.md 2>/dev/null | head -0
cp amx/*.md "$W/" 2>/dev/null
grep -A60 'task sizes' "$W"/amx-figures.md 2>/dev/null | grep -E '^\| [0-9]' | head -60
echo "== tg128 per family (interleaved)"
for i in 1 2; do
	for f in avx512-vnni avx512-vnni-rowpf avx512-vnni-cvt; do
		TILELAB_SIMD=$f timeout 60 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 0 -n 128 -r 3 -t "$T" -q --json "$W/tg-q4-$f-$i.json" >/dev/null 2>&1
		TILELAB_SIMD=$f timeout 60 $B/tilelab bench -m /tmp/bm-q8_0.gguf -p 0 -n 128 -r 3 -t "$T" -q --json "$W/tg-q8-$f-$i.json" >/dev/null 2>&1
	done
done
echo "== pp512 first repetitions (gctrace), with and without warm-up"
GODEBUG=gctrace=1 timeout 60 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 0 -r 5 -t "$T" -q --json "$W/pp-warm.json" >"$W/pp-warm.log" 2>&1
timeout 60 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 0 -r 5 -t "$T" -q --no-warmup --json "$W/pp-nowarm.json" >/dev/null 2>&1
timeout 60 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 0 -r 5 -t "$T" -q --cpuprofile "$W/pp.prof" --json "$W/pp-prof.json" >/dev/null 2>&1
timeout 60 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 0 -n 128 -r 3 -t "$T" -q --cpuprofile "$W/tg.prof" >/dev/null 2>&1
python3 - "$W" <<'PY' 2>&1 | tee "$W/summary.txt"
import json, sys, glob, os
w = sys.argv[1]
for f in sorted(glob.glob(w + "/*.json")):
    try:
        d = json.load(open(f))
    except Exception as e:
        print(os.path.basename(f), "unreadable", e); continue
    for r in d["results"]:
        print(os.path.basename(f), r["mode"], r["test"], "%.1f" % r.get("avg_ts", 0), [round(x, 1) for x in r.get("samples_ts", [])])
PY
grep -c '^gc ' "$W/pp-warm.log"
tar -C "$W" -czf "$OUT/probe.tar.gz" .
