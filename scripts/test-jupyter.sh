#!/usr/bin/env bash
# The Jupyter tests: build tilelab, install its kernelspec into a temporary prefix, then run with Debian's
# /usr/bin/python3 (the python3 first on PATH may be a build without Jupyter):
#   - jupyter_kernel_test (12 of 12, none skipped) and the client tests (restart, interrupt, bad signature,
#     stalled IOPub subscriber, nbconvert --execute, jupyter console)   scripts/jupyter-tests/
#   - nbconvert --execute on every notebook in notebooks/
#
#   scripts/test-jupyter.sh             all of the above
#   scripts/test-jupyter.sh --latency   also measure execute->reply and start->ready (latency.py)
#
# Run as root (CI) it installs the Debian packages it needs; otherwise it says which and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

latency=false
[ "${1:-}" = "--latency" ] && latency=true

PY=/usr/bin/python3
JUPYTER=/usr/bin/jupyter
packages="python3-jupyter-kernel-test python3-jupyter-client jupyter-nbconvert python3-nbclient jupyter-console"

have_packages() {
	[ -x "$PY" ] && [ -x "$JUPYTER" ] &&
		"$PY" -c 'import jupyter_kernel_test, jupyter_client, nbclient, nbconvert, jupyter_console, zmq' 2>/dev/null &&
		"$JUPYTER" nbconvert --version >/dev/null 2>&1 && "$JUPYTER" console --version >/dev/null 2>&1
}

if ! have_packages; then
	if [ "$(id -u)" = 0 ]; then
		echo "installing the Jupyter test packages: $packages"
		apt-get update && apt-get install -y $packages
	else
		echo "The Jupyter tests need Debian packages that are missing. Install them with:" >&2
		echo "  sudo apt-get update && sudo apt-get install -y $packages" >&2
		exit 1
	fi
	have_packages || { echo "the Jupyter test packages are still missing after apt-get" >&2; exit 1; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/bin/tilelab" ./cmd/tilelab
"$tmp/bin/tilelab" install --prefix "$tmp/prefix" >/dev/null

# Keep Jupyter to the temporary kernelspec and runtime folders, and out of the user's home.
export JUPYTER_PATH="$tmp/prefix/share/jupyter"
export JUPYTER_RUNTIME_DIR="$tmp/runtime"
export JUPYTER_DATA_DIR="$tmp/data"
export IPYTHONDIR="$tmp/ipython"
export JUPYTER="$JUPYTER"

"$PY" -c 'import sys; from jupyter_client.kernelspec import KernelSpecManager as M; s = M().find_kernel_specs(); sys.exit(0 if "tilelab" in s else "jupyter_client does not find the tilelab kernelspec: %s" % s)' 

(cd scripts/jupyter-tests && "$PY" run.py)

shopt -s nullglob
notebooks=(notebooks/*.ipynb)
if [ ${#notebooks[@]} -eq 0 ]; then
	echo "no notebooks in notebooks/ to execute"
fi
for nb in "${notebooks[@]}"; do
	echo "nbconvert --execute $nb"
	"$JUPYTER" nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=tilelab \
		--ExecutePreprocessor.timeout=600 --output-dir "$tmp/notebooks" "$nb" >/dev/null
done

if $latency; then
	(cd scripts/jupyter-tests && "$PY" latency.py)
fi
echo "Jupyter tests passed"
