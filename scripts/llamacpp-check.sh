#!/usr/bin/env bash
# Checks engine/synth's presets and engine/model's logits against real llama.cpp (issue 2's done-when: every synth
# preset loads in llama.cpp and gives the same last-position logits as `tilelab logits` for the same prompt).
#
# llama.cpp comes prebuilt from the npm package @node-llama-cpp/linux-x64 (its libllama.so, libggml*.so); a small
# C program (scripts/llamacpp-check/llcheck.c) loads a GGUF with it, tokenizes the prompt, evaluates exactly the
# token ids `tilelab logits` used, and compares the last position's logits. Linux x86-64 only; needs npm, gcc, Go.
#
#   scripts/llamacpp-check.sh            tiny presets in f32, f16, bf16, q8_0, q4_0; the large presets cut to one
#                                        layer in q4_0 and q8_0; a tiny model with the real Qwen3 vocabulary; and the
#                                        testdata model against its stored llama.cpp logits (harness sanity check)
#   scripts/llamacpp-check.sh --quick    tiny presets in f32, q8_0, q4_0 and the sanity check only
#   -v                                   show llama.cpp's log and every command's output
#
# Environment: TILELAB_LLAMACPP_CACHE (default ~/.cache/tilelab/llamacpp-check) holds the npm package and the
# compiled harness; TILELAB_TESTDATA as for the Go tests (default ../shared/testdata); THREADS (default 2).
#
# Bounds (cosine similarity of the last-position logits, llama.cpp's as reference): F32 >= 0.99999 (issue 2);
# Q8_0/Q4_0 >= 0.9995 (issue 2; llama.cpp quantizes activations to Q8_0, ours may not in the same way); F16/BF16
# >= 0.9999 (not set by the issue: llama.cpp rounds activations to F16/BF16 for those matrices, TileLab keeps
# float32). F32 and F16/BF16 must also agree on the argmax; the token ids of the prompt must agree everywhere.
#
# MoE routing: when llama.cpp's router is within a hair of a tie at the last token (log-probability gap between
# the k-th and (k+1)-th expert below 0.01), the noise of activation quantization alone may flip the choice and
# move the logits far more than the bound allows. Such a row is re-run on the prompt less its last token(s)
# (up to 3) and the result reported with a note; it fails only if no shorter prompt passes.
#
# Debugging one model by hand (paths as this script leaves them in the cache):
#   $cache/llcheck -m M.gguf -L $cache/linux-x64-3.22.1/package/bins/linux-x64 --tokens 1,2,3 [--ours F.f32] [-v]
#   LLCHECK_DUMP=DIR writes every float32 tensor llama.cpp computes (DIR/NNN-NAME.f32, in evaluation order);
#   LLCHECK_NO_REPACK=1 keeps ggml's plain Q4_0/Q8_0 kernels; --kv f16 uses llama.cpp's default F16 KV cache.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=false
verbose=false
for a in "$@"; do
	case $a in
	--quick) quick=true ;;
	-v) verbose=true ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "llamacpp-check: unknown argument $a" >&2; exit 2 ;;
	esac
done

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
	echo "llamacpp-check: the prebuilt llama.cpp used here is for Linux x86-64 only, not $(uname -s)-$(uname -m)" >&2
	exit 1
fi
for tool in npm gcc go tar; do
	command -v "$tool" >/dev/null || { echo "llamacpp-check: $tool is required" >&2; exit 1; }
done

PKG=@node-llama-cpp/linux-x64
VERSION=3.22.1 # llama.cpp commit 0ad4a86; llcheck.c's struct layouts are those of that commit
cache=${TILELAB_LLAMACPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tilelab/llamacpp-check}
libdir=$cache/linux-x64-$VERSION/package/bins/linux-x64
threads=${THREADS:-2}
testdata=${TILELAB_TESTDATA:-$root/../shared/testdata}

# The npm package: fetched once with npm itself (which checks the registry's integrity hash), then unpacked.
if [ ! -f "$libdir/libllama.v0.5.0.so" ]; then
	mkdir -p "$cache"
	echo "fetching $PKG@$VERSION from npm into $cache"
	(cd "$cache" && npm pack --silent "$PKG@$VERSION" >/dev/null)
	rm -rf "$cache/linux-x64-$VERSION.tmp"
	mkdir -p "$cache/linux-x64-$VERSION.tmp"
	tar -xzf "$cache/node-llama-cpp-linux-x64-$VERSION.tgz" -C "$cache/linux-x64-$VERSION.tmp"
	rm -rf "$cache/linux-x64-$VERSION"
	mv "$cache/linux-x64-$VERSION.tmp" "$cache/linux-x64-$VERSION"
	[ -f "$libdir/libllama.v0.5.0.so" ] || { echo "llamacpp-check: $PKG@$VERSION has no libllama.v0.5.0.so" >&2; exit 1; }
fi
llcheck=$cache/llcheck
src=$root/scripts/llamacpp-check/llcheck.c
if [ ! -x "$llcheck" ] || [ "$src" -nt "$llcheck" ]; then
	gcc -O2 -Wall -Wextra -Werror -o "$llcheck.tmp" "$src" -ldl -lm
	mv "$llcheck.tmp" "$llcheck"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/llamacpp-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/tilelab" ./cmd/tilelab
tilelab=$work/tilelab

# The prompt: words of synth's corpus (merges apply), punctuation, digits, and characters outside it (byte
# fallback for SentencePiece, multi-byte tokens for BPE).
prompt='Once upon a time, the tiles multiplied 128 numbers: naïve café ☕!'
printf '%s' "$prompt" >"$work/prompt.txt"

run() { # run CMD...: its output, shown with -v
	if $verbose; then "$@" 2>&1 | tee /dev/stderr; else "$@" 2>&1; fi
}
field() { sed -n "s/^$1=//p" <<<"$2" | head -1; }

rows=()
failures=0
add_row() { rows+=("$(printf '%-38s %-5s %6s %-5s %12s %10s %-15s %-7s %s' "$@")"); }

bound_for() {
	case $1 in
	f32) echo 0.99999 ;;
	f16 | bf16) echo 0.9999 ;;
	*) echo 0.9995 ;;
	esac
}

# check NAME QUANT MODEL: our tokens and logits against llama.cpp's on the prompt.
check() {
	local name=$1 quant=$2 model=$3 bound out ours_ids ll tok_agree cos rel am_ours am_ll margin verdict note n ids try
	bound=$(bound_for "$quant")
	if ! out=$(run "$tilelab" logits -m "$model" -p "$prompt" -t "$threads" -o "$work/ours.f32"); then
		echo "$out" >&2
		add_row "$name" "$quant" - - - - - FAIL "tilelab logits failed"
		failures=$((failures + 1))
		return
	fi
	ours_ids=$(sed -n 's/^tokens ([0-9]*): //p' <<<"$out" | tr ' ' ',')
	if ! ll=$(run "$llcheck" -m "$model" -L "$libdir" -t "$threads" --prompt-file "$work/prompt.txt" \
		--tokens "$ours_ids" --ours "$work/ours.f32" $($verbose && echo -v)); then
		echo "$ll" >&2
		add_row "$name" "$quant" - - - - - FAIL "llama.cpp failed (log above)"
		failures=$((failures + 1))
		return
	fi
	tok_agree=yes
	[ "$(field llama_tokens "$ll")" = "$ours_ids" ] || tok_agree=NO
	cos=$(field cosine "$ll")
	rel=$(field rel_l2 "$ll")
	am_ours=$(field ours_argmax "$ll")
	am_ll=$(field llama_argmax "$ll")
	margin=$(field router_last_margin "$ll")
	note=""
	verdict=ok
	n=$(tr ',' '\n' <<<"$ours_ids" | wc -l)
	try=0
	# A last-token router near-tie: retry on shorter prompts (see the header).
	while [ -n "$margin" ] && awk -v c="$cos" -v b="$bound" -v m="$margin" 'BEGIN{exit !(c < b && m < 0.01)}' && [ $try -lt 3 ]; do
		note="${note}router near-tie at ${n} tokens (margin $margin, $(field router_last_margin_at "$ll")); "
		try=$((try + 1))
		n=$((n - 1))
		ids=$(cut -d, -f1-"$n" <<<"$ours_ids")
		run "$tilelab" logits -m "$model" --tokens "$ids" -t "$threads" -o "$work/ours.f32" >/dev/null || true
		ll=$(run "$llcheck" -m "$model" -L "$libdir" -t "$threads" --tokens "$ids" --ours "$work/ours.f32") || true
		cos=$(field cosine "$ll")
		rel=$(field rel_l2 "$ll")
		am_ours=$(field ours_argmax "$ll")
		am_ll=$(field llama_argmax "$ll")
		margin=$(field router_last_margin "$ll")
		note="${note}compared at ${n} tokens; "
	done
	if ! awk -v c="$cos" -v b="$bound" 'BEGIN{exit !(c >= b)}'; then
		verdict=FAIL
		note="${note}cosine below $bound; "
	fi
	if [ "$tok_agree" != yes ]; then
		verdict=FAIL
		note="${note}llama.cpp tokens $(field llama_tokens "$ll"); "
	fi
	if [ "$am_ours" != "$am_ll" ]; then
		case $quant in
		q8_0 | q4_0) note="${note}argmax differs (quantization noise allowed); " ;;
		*) verdict=FAIL; note="${note}argmax differs; " ;;
		esac
	fi
	[ -n "$margin" ] && [ -z "$note" ] && note="router margin at last token $margin"
	[ "$verdict" = FAIL ] && failures=$((failures + 1))
	add_row "$name" "$quant" "$n" "$tok_agree" "$cos" "$rel" "$am_ours/$am_ll" "$verdict" "${note%; }"
}

# tokcheck NAME MODEL: tokenization alone, on strings that probe pre-tokenizer splits, whitespace, byte
# fallback, multi-byte characters and control tokens written in the text (parsed, as both sides do for a prompt).
tok_strings=(
	'Hello world'
	'  two leading spaces, and two trailing  '
	$'line one\nline two\n\n\ttabbed\r\n'
	'数字 123456789 and émoji 🎉🦙, ÅÄÖ'
	"don't won't I'M 'quoted' we've"
	# Not '</s>': llama.cpp (since the build this script fetches) forces that spelling to a control token whatever
	# type the vocabulary gives it; the Qwen3 vocabulary stores it as a normal token, as we read it.
	'<|im_start|>user
hi<|im_end|><s>x'
	' '
	'a'
)
tokrows=()
tokcheck() {
	local name=$1 model=$2 i=0 s out ours ll theirs
	for s in "${tok_strings[@]}"; do
		i=$((i + 1))
		printf '%s' "$s" >"$work/tok.txt"
		if out=$(run "$tilelab" logits -m "$model" -p "$s" -t "$threads"); then
			ours=$(sed -n 's/^tokens ([0-9]*): //p' <<<"$out" | tr ' ' ',')
		else
			echo "$out" >&2
			ours="(tilelab failed)"
		fi
		ll=$(run "$llcheck" -m "$model" -L "$libdir" --prompt-file "$work/tok.txt") || ll=""
		theirs=$(field llama_tokens "$ll")
		if [ "$ours" = "$theirs" ]; then
			tokrows+=("$(printf '%-38s %2d  ok    %s' "$name" "$i" "$ours")")
		else
			tokrows+=("$(printf '%-38s %2d  FAIL  ours %s, llama.cpp %s' "$name" "$i" "$ours" "$theirs")")
			failures=$((failures + 1))
		fi
	done
}

synth() { # synth OUT PRESET ARGS...
	local out=$1
	shift
	run "$tilelab" synth "$@" -q -o "$out" >/dev/null
}

echo "llama.cpp: $PKG@$VERSION (llama.cpp 0ad4a86, CPU), $threads threads; machine: $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# Harness sanity check: the testdata model with llama.cpp's default context settings (F16 KV cache, flash
# attention auto) reproduces llama.cpp's stored logits (made by llama.cpp 3f545bec).
ref=$testdata/reference/tiny-qwen3moe-q4_0
tq=$testdata/models/tiny-qwen3moe-q4_0.gguf
if [ -f "$tq" ]; then
	ids=$(od -An -t d4 -v "$ref/prompt-tokens.i32" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
	ll=$(run "$llcheck" -m "$tq" -L "$libdir" -t "$threads" --kv f16 --prompt-file "$ref/prompt.txt" --tokens "$ids" \
		--ours "$ref/logits-last.f32")
	cos=$(field cosine "$ll")
	v=ok
	awk -v c="$cos" 'BEGIN{exit !(c >= 0.99999)}' || v=FAIL
	[ "$(field llama_tokens "$ll")" = "$ids" ] || v=FAIL
	[ "$v" = FAIL ] && failures=$((failures + 1))
	add_row "harness: testdata vs stored llama.cpp" q4_0 "$(tr ',' '\n' <<<"$ids" | wc -l)" \
		"$([ "$(field llama_tokens "$ll")" = "$ids" ] && echo yes || echo NO)" "$cos" "$(field rel_l2 "$ll")" \
		"$(field ours_argmax "$ll")/$(field llama_argmax "$ll")" "$v" "stored logits-last.f32 against this llama.cpp"
	check "testdata tiny-qwen3moe (real vocab)" q4_0 "$tq"
	tokcheck "qwen3 vocab (testdata model)" "$tq"
else
	echo "llamacpp-check: $tq not found; skipping the harness sanity check" >&2
fi

quants="f32 f16 bf16 q8_0 q4_0"
$quick && quants="f32 q8_0 q4_0"
for preset in tiny-dense tiny-moe tiny-llama; do
	for q in $quants; do
		synth "$work/m.gguf" "$preset" --quant "$q"
		check "$preset" "$q" "$work/m.gguf"
	done
	[ "$preset" = tiny-moe ] || tokcheck "$preset built-in vocab" "$work/m.gguf"
done
if ! $quick; then
	if [ -f "$testdata/tokenizer/qwen3-vocab.gguf" ]; then
		synth "$work/m.gguf" tiny-dense --quant q8_0 --vocab "$testdata/tokenizer/qwen3-vocab.gguf"
		check "tiny-dense --vocab qwen3-vocab" q8_0 "$work/m.gguf"
	fi
	for preset in bench-moe qwen3-30b-a3b qwen3-8b; do
		for q in q4_0 q8_0; do
			synth "$work/m.gguf" "$preset" --quant "$q" --layers 1
			check "$preset --layers 1" "$q" "$work/m.gguf"
		done
	done
	rm -f "$work/m.gguf"
fi

echo
printf '%-38s %-5s %6s %-5s %12s %10s %-15s %-7s %s\n' model quant tokens tok= cosine "rel L2" "argmax us/ll" verdict note
printf '%s\n' "${rows[@]}"
echo
echo "tokenization (add_special, parse_special) of extra strings: vocabulary, string number, ids"
printf '%s\n' "${tokrows[@]}"
echo
if [ "$failures" -gt 0 ]; then
	echo "llamacpp-check: $failures failure(s)"
	exit 1
fi
echo "llamacpp-check: all rows agree with llama.cpp"
