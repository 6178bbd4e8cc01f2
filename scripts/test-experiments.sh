#!/usr/bin/env bash
# Runs every experiment in experiments/ headless on a tiny model, as CI does: each must begin with a comment saying
# what it shows, declare its parameters with `param`, exit 0, and write report.md and a valid results.json.
#
#   scripts/test-experiments.sh              every experiments/*.tlab
#   scripts/test-experiments.sh NAME...      only these (e.g. seed-table moe-amx)
#   KEEP=DIR scripts/test-experiments.sh     keep the outputs in DIR (default: a temporary folder, removed)
#   TILELAB=BIN scripts/test-experiments.sh  use this tilelab binary instead of building one (machines without Go)
#
# The parameters below shrink each experiment to seconds here; run without them (tilelab run experiments/X.tlab)
# for the real sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A tiny=(
	[seed-table]="model=synth:tiny-moe ngl=1 pp=16 tg=4 reps=1"
	[placement-30b]="model=synth:tiny-moe ngl=0,1 hybrid=1"
	[tile-sweep]="m=32 n=64 k=256 reps=1"
	[amx-threshold]="m=1,16,64 n=128 k=256 reps=1"
	[moe-amx]="model=synth:tiny-moe pp=16 tg=4 reps=1"
	[accuracy]="model=synth:tiny-moe"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=${KEEP:-$tmp/out}
mkdir -p "$out"
bin=${TILELAB:-$tmp/tilelab}
[ -n "${TILELAB:-}" ] || go build -o "$bin" ./cmd/tilelab
# Synthetic models go into a cache of this run's own, so nothing from earlier runs is reused.
export XDG_CACHE_HOME=$tmp/cache

if [ $# -gt 0 ]; then
	scripts=()
	for n in "$@"; do scripts+=("experiments/${n%.tlab}.tlab"); done
else
	scripts=(experiments/*.tlab)
fi
[ ${#scripts[@]} -gt 0 ] && [ -e "${scripts[0]}" ] || { echo "no experiments to run" >&2; exit 1; }

fail=0
start=$SECONDS
for f in "${scripts[@]}"; do
	name=$(basename "$f" .tlab)
	problem=""
	if [ ! -f "$f" ]; then
		problem="no such experiment"
	elif [ "$(head -c 2 "$f")" != "# " ]; then
		problem="does not begin with a comment saying what it shows"
	elif ! grep -q '^param ' "$f"; then
		problem="declares no parameters (param key=value)"
	elif [ -z "${tiny[$name]+set}" ]; then
		problem="has no tiny-model parameters in scripts/test-experiments.sh"
	fi
	if [ -n "$problem" ]; then
		echo "FAIL $name: $problem"
		fail=1
		continue
	fi
	t0=$SECONDS
	# shellcheck disable=SC2086 # the parameters are words on purpose
	if ! "$bin" run "$f" --out "$out/$name" ${tiny[$name]} >"$out/$name.log" 2>&1; then
		echo "FAIL $name: tilelab run exited non-zero; its output:"
		tail -20 "$out/$name.log" | sed 's/^/    /'
		fail=1
		continue
	fi
	for want in report.md results.json; do
		[ -s "$out/$name/$want" ] || { echo "FAIL $name: no $want"; fail=1; }
	done
	if [ -s "$out/$name/results.json" ] && command -v python3 >/dev/null &&
		! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["results"], "no results"; assert d["environment"], "no environment"' "$out/$name/results.json"; then
		echo "FAIL $name: results.json is not a report with results and an environment"
		fail=1
	fi
	echo "ok   $name ($((SECONDS - t0)) s): tilelab run $f ${tiny[$name]}"
done
echo "experiments: $((SECONDS - start)) s in all"
[ $fail = 0 ] || { echo "some experiments failed" >&2; exit 1; }
echo "experiments passed"
