#!/usr/bin/env bash
# One device call for this session's open questions (run there: bash scripts/device-probe.sh, carry
# [".devbuild/amx", ".devbuild/h7"] after scripts/device-round.sh build): the AMX int8 task-size grid (with and
# without quantization overlapped), pp512's first repetitions, cpu against cpu+amx.
# Everything lands in $OUT/probe.tar.gz (the device tool returns a few files only) and the summary is printed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
W=$(mktemp -d)
B=.devbuild/h7
T=${THREADS:-16}
{
	lscpu | head -20
	echo "amx_tile CPUs: $(grep -c amx_tile /proc/cpuinfo)"
	# A CPU quota starves a pool of 16 spinning workers (cgroup v2 cpu.max, or v1 cfs quota/period).
	echo "cpu quota: $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null) / $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null)")"
	nvidia-smi -L 2>&1
	echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled) defrag: $(cat /sys/kernel/mm/transparent_hugepage/defrag)"
	echo "nproc $(nproc)"
} | tee "$W/machine.txt"
export HOME=${HOME:-/tmp}
for q in q4_0 q8_0; do
	[ -f /tmp/bm-$q.gguf ] || $B/tilelab synth bench-moe --quant $q -o /tmp/bm-$q.gguf -q
done
echo "== AMX tests on the tile unit"
(cd amx && timeout 150 ../.devbuild/amx/amx.test -test.count=1 -test.v >"$W/amx-tests.log" 2>&1)
echo "amx tests rc=$?"
grep -E '^(--- FAIL|FAIL|ok|PASS)|panic|largest' "$W/amx-tests.log" | head -20
echo "== AMX task grid and GEMM"
# The figures test writes amx-figures.md into $OUT.
(cd amx && OUT="$W" AMX_FIGURES=${AMX_FIGURES:-tasks,gemm} timeout 150 ../.devbuild/amx/amxdev.test -test.run DeviceFigures \
	-test.v >"$W/amx-tasks.log" 2>&1)
grep -E '^\| [0-9]|^peak' "$W"/amx-figures.md 2>/dev/null | cut -c1-150 | head -100
echo "== pp512 without warm-up, and with"
timeout 60 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 0 -r 4 -t "$T" -q --no-warmup --json "$W/pp-nowarm.json" >/dev/null 2>&1
timeout 60 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 0 -r 4 -t "$T" -q --json "$W/pp-warm.json" >/dev/null 2>&1
echo "== modes, interleaved"
for i in 1 2; do
	for m in cpu cpu+amx; do
		timeout 90 $B/tilelab bench -m /tmp/bm-q4_0.gguf -p 512 -n 128 -r 3 -t "$T" -q --mode $m \
			--json "$W/modes-$m-$i.json" >/dev/null 2>&1
	done
done
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
tar -C "$W" -czf "$OUT/probe.tar.gz" .
