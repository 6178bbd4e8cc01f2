#!/bin/sh
# Builds the AMX test binaries here (static, CGO_ENABLED=0) into .devbuild/ and prints the command to run on the
# accelerator machine through the device tool, with carry: [".devbuild/amx"]. There it checks the machine, runs the
# AMX tests against the real tile unit (hardware vs emulator, goroutine churn, every kernel vs the references),
# then the figures (peak, sweep, GEMM shapes, MUL_MAT_ID, calibration), written to $OUT/amx-figures.md.
#
#   scripts/device-amx.sh            # build, print the device command
#   AMX_FIGURES=gemm,moe scripts/device-amx.sh   # only some sections of the figures
set -eu
cd "$(dirname "$0")/.."
mkdir -p .devbuild/amx
CGO_ENABLED=0 go test -c -o .devbuild/amx/amx.test ./amx
CGO_ENABLED=0 go test -c -tags amxdevice -o .devbuild/amx/amxdev.test ./amx
cat <<CMD
lscpu | head -20; grep -c amx_tile /proc/cpuinfo; nvidia-smi -L; cd amx && \
../.devbuild/amx/amx.test -test.count=1 -test.v 2>&1 | grep -E '^(--- FAIL|FAIL|ok|PASS)|largest|SKIP|panic' | head -40; \
AMX_FIGURES=${AMX_FIGURES:-} ../.devbuild/amx/amxdev.test -test.run DeviceFigures -test.v -test.timeout 540s 2>&1 | tee \$OUT/figures.log | grep -v '^=== RUN'
CMD
