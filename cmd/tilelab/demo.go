package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"tilelab/kernel"
	"tilelab/workbench"
)

func init() {
	register("demo", "a quick tour: synthesize a small MoE model, place it, run it, time it, check it", runDemo)
}

// demoScript is the tour, written in the workbench's own language so that every step can be typed into a notebook
// cell. "## " starts a section, "# " lines explain it, every other line is a command. $model, $reps, $pp and $tg
// are filled in from the flags before it runs, so the commands echoed are the ones a user can copy.
const demoScript = `## 1. This machine
# What TileLab sees before it places anything: the CPU's vector and matrix extensions, whether the kernel granted
# AMX tile state to this process (CPUID bits alone are not permission), and the GPUs or why there are none.
env

## 2. One model file, loaded in two modes
# A synthetic model has a real architecture (here Qwen3-MoE: attention, a router and routed experts) with
# random weights. It is generated into a cache folder on first use. Each load places every weight in a buffer
# type: mode cpu keeps them all in plain CPU buffers; mode cpu+amx repacks the attention projections into AMX's
# tile layout (amx=attn, the seed report's policy; amx=all would offer every matrix, the MoE experts included).
load $model as=cpu
load $model amx=attn as=amx

## 3. Where each weight went, and why
# Every placement decision is recorded with its reason. Layer 0 of the cpu+amx load: attention projections in
# AMX (packed, so they take more bytes), norms and the router in CPU, the experts in CPU under amx=attn.
placement amx layer=0
buffers amx

## 4. The GPU modes, planned
# plan places a model from its metadata alone, so GPU modes can be laid out on a machine without a GPU.
# ngl=2 puts the last two layers in CUDA0 (device memory); the rest is pinned in CUDA_Host so it can be sent over.
plan $model amx=off,attn ngl=2

## 5. A short generation
# The forward pass end to end: tokenize, prefill the prompt, then one token at a time with the KV cache.
# The weights are random, so the text is nonsense; the point is the path and the speed.
generate "Once upon a time" model=cpu n=24

## 6. The four modes, timed
# bench re-places the same file for each mode (as llama-bench runs a file per flag set) and reports mean ± sd
# over repetitions. A mode this machine cannot run is a row that says why: the AMX emulator is never timed.
set reps=$reps warmup=1
bench cpu pp=$pp tg=$tg mode=cpu,cpu+amx,cpu+gpu,cpu+gpu+amx amx=attn

## 7. Where the time goes
# profile times every op of a prompt pass: MUL_MAT and MUL_MAT_ID (the experts) are the matrix work AMX targets.
profile cpu pp=$pp by=op

## 8. Is every mode right?
# The seed's MoE experts came out NaN when a fallback read AMX-packed bytes as plain ones. check scans every op
# output for NaN/Inf and compares the logits with a float32 reference, mode by mode (AMX runs in the bit-exact
# emulator where there is no AMX hardware).
check amx mode=cpu,cpu+amx

## 9. The seed's question at full size
# Qwen3-30B-A3B in Q4_0, planned from metadata (no 17 GB file): the buffer tables of the seed report, CPU-only
# and with 12 of 48 layers on a GPU. Compare AMX 486 MiB and 364.5 MiB with the report's figures.
plan synth:qwen3-30b-a3b quant=q4_0 amx=attn ngl=0,12
`

const demoEpilogue = `What next
---------
  tilelab demo --script            the commands above, ready for a notebook cell or a .tlab file
  tilelab run experiments/seed-table.tlab --out results/seed-table
                                   the seed's four-mode table (see experiments/ for the others)
  tilelab install --user           add the TileLab kernel to Jupyter, then open notebooks/quickstart.ipynb
  tilelab env                      the machine, as results record it
`

// demoStep is one part of the tour: a heading, its explanation, or a command.
type demoStep struct {
	kind byte // 'h' heading, 't' explanation, 'c' command
	text string
}

func parseDemo(script string, vars map[string]string) []demoStep {
	var steps []demoStep
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimRight(line, " ")
		switch {
		case line == "":
		case strings.HasPrefix(line, "## "):
			steps = append(steps, demoStep{'h', line[3:]})
		case strings.HasPrefix(line, "#"):
			steps = append(steps, demoStep{'t', strings.TrimSpace(line[1:])})
		default:
			for k, v := range vars {
				line = strings.ReplaceAll(line, "$"+k, v)
			}
			steps = append(steps, demoStep{'c', line})
		}
	}
	return steps
}

// quoteWord writes a value as one word of the workbench language: a path with a space or a quote in it would
// otherwise split into several arguments.
func quoteWord(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\"#\\") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// lineOutput is the terminal output of the demo: it makes sure a table never starts in the middle of a line that
// a stream (generated text) left open.
type lineOutput struct {
	workbench.TextOutput
	w     io.Writer
	atBOL bool
}

func (o *lineOutput) Write(p []byte) (int, error) {
	if len(p) > 0 {
		o.atBOL = p[len(p)-1] == '\n'
	}
	return o.w.Write(p)
}

func (o *lineOutput) newline() {
	if !o.atBOL {
		o.Write([]byte("\n"))
	}
}

func (o *lineOutput) Display(b kernel.Bundle, id string) { o.newline(); o.TextOutput.Display(b, id) }
func (o *lineOutput) Result(b kernel.Bundle)             { o.newline(); o.TextOutput.Result(b) }
func (o *lineOutput) Page(b kernel.Bundle)               { o.newline(); o.TextOutput.Page(b) }

const demoUsage = `usage: tilelab demo [--model synth:PRESET] [--reps N] [--pp N] [--tg N] [--cache DIR] [--script]

A tour of TileLab on a synthetic model, written in the workbench language: the machine, two loads of one file
(cpu and cpu+amx), where every weight went and why, the GPU modes as plans, a short generation, a four-mode
bench, a profile, a NaN and accuracy check, and the seed's 30B buffer tables. Needs nothing but this binary.
`

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "synth:tiny-moe", "the model to tour: synth:PRESET, or a GGUF `file`")
	reps := fs.Int("reps", 3, "timed repetitions per bench point")
	pp := fs.Int("pp", 128, "prompt tokens for bench and profile")
	tg := fs.Int("tg", 32, "generated tokens for bench")
	cache := fs.String("cache", "", "keep generated models in `DIR` (default: a temporary folder, removed at the end)")
	script := fs.Bool("script", false, "print the tour's commands and exit")
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tilelab demo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if *reps < 1 || *pp < 1 || *tg < 1 {
		fmt.Fprintln(stderr, "tilelab demo: --reps, --pp and --tg must be at least 1")
		return errUsage
	}
	vars := map[string]string{"model": quoteWord(*model), "reps": fmt.Sprint(*reps), "pp": fmt.Sprint(*pp), "tg": fmt.Sprint(*tg)}
	steps := parseDemo(demoScript, vars)
	if *script {
		for _, st := range steps {
			switch st.kind {
			case 'h':
				fmt.Fprintf(stdout, "\n# %s\n", st.text)
			case 'c':
				fmt.Fprintln(stdout, st.text)
			}
		}
		return nil
	}

	dir := *cache
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tilelab-demo-")
		if err != nil {
			return fmt.Errorf("a folder for the synthetic model: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	out := &lineOutput{w: stdout, atBOL: true}
	out.TextOutput = workbench.TextOutput{Stdout: out, Stderr: stderr}
	s := workbench.New(workbench.Options{Version: Version, Commit: commit(), CacheDir: dir})
	start := time.Now()
	fmt.Fprintf(out, "TileLab %s demo: where LLM inference work runs (CPU, AMX tiles, GPU) and why\n", Version)
	fmt.Fprintln(out, "Each '>' line below is a workbench command: type it in a TileLab notebook cell or put it in a .tlab script.")
	var failed []string
	for _, st := range steps {
		switch st.kind {
		case 'h':
			out.newline()
			fmt.Fprintf(out, "\n%s\n%s\n", st.text, strings.Repeat("=", len([]rune(st.text))))
		case 't':
			fmt.Fprintln(out, st.text)
		case 'c':
			out.newline()
			fmt.Fprintf(out, "\n> %s\n", st.text)
			if err := s.Execute(ctx, st.text, out); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted at %q", st.text)
				}
				out.newline()
				fmt.Fprintf(out, "(this step failed: %v)\n", err)
				failed = append(failed, st.text)
			}
		}
	}
	out.newline()
	fmt.Fprintf(out, "\n%s\nThe tour took %.1f s.\n", demoEpilogue, time.Since(start).Seconds())
	if len(failed) > 0 {
		return fmt.Errorf("%d step(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}
