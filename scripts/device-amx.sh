#!/bin/sh
# Builds the AMX test binaries here (static, CGO_ENABLED=0) into .devbuild/amx/ and prints the command to run on
# the accelerator machine through the device tool, with carry: [".devbuild/amx"]. There it checks the machine,
# runs every AMX test against the real tile unit (hardware vs emulator bit for bit, 32-goroutine churn under GC,
# every kernel vs the references on the hardware too), then the figures (peak, tile-configuration sweep, GEMM at
# the issue's shapes, MUL_MAT_ID against the VNNI path and the CPU backend, small batches cache-resident and from
# memory against CPU mode, calibration against CPU mode's kernel), written to $OUT/amx-figures.md with the logs
# beside it. The whole call should take about a minute on the machine (20 s before the decode section and the
# memory-bound calibration were added; not yet run).
#
#   scripts/device-amx.sh                          # build, print the device command
#   AMX_FIGURES=small,decode scripts/device-amx.sh # only some sections: sweep gemm tasks core pipe order bf16 moe small decode calibrate
set -eu
cd "$(dirname "$0")/.."
# A misspelt section would select nothing and spend a device call on no figures: refuse it here.
for s in $(echo "${AMX_FIGURES:-}" | tr ',' ' '); do
	case "$s" in
	sweep | gemm | tasks | core | pipe | order | bf16 | moe | small | decode | calibrate) ;;
	*)
		echo "AMX_FIGURES: unknown section '$s' (sections: sweep gemm tasks core pipe order bf16 moe small decode calibrate)" >&2
		exit 2
		;;
	esac
done
mkdir -p .devbuild/amx
CGO_ENABLED=0 go test -c -o .devbuild/amx/amx.test ./amx
CGO_ENABLED=0 go test -c -tags amxdevice -o .devbuild/amx/amxdev.test ./amx
cat <<CMD
lscpu | head -20; grep -c amx_tile /proc/cpuinfo; nvidia-smi -L; cd amx && \
timeout 120 ../.devbuild/amx/amx.test -test.count=1 -test.v > \$OUT/tests.log 2>&1; echo tests rc=\$?; \
grep -E '^(--- FAIL|FAIL|ok|PASS)|largest|panic' \$OUT/tests.log | head -20; \
AMX_FIGURES=${AMX_FIGURES:-} timeout -s QUIT 290 ../.devbuild/amx/amxdev.test -test.run 'DeviceFigures' -test.v \
-test.timeout 280s > \$OUT/figures.log 2>&1; echo figures rc=\$?; grep -v '^=== RUN' \$OUT/figures.log
CMD
