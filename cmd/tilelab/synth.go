package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"tilelab/engine/gguf"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
)

func init() {
	register("synth", "write a synthetic model (real architecture, random weights) as GGUF", runSynth)
}

func runSynth(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quant := fs.String("quant", "", "weight type: f32, f16, bf16, q8_0 or q4_0 (default f32 for tiny-* presets, q4_0 for the others)")
	layers := fs.Int("layers", 0, "override the preset's layer count")
	vocab := fs.String("vocab", "", "copy the tokenizer.* keys of this GGUF file instead of the built-in vocabulary")
	seed := fs.Uint64("seed", 0, "random seed; the same seed gives the same bytes")
	out := fs.String("o", "", "output file (required)")
	quiet := fs.Bool("q", false, "no progress on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tilelab synth PRESET [--quant T] [--layers N] [--vocab FILE.gguf] [--seed S] -o OUT.gguf\n\npresets: %s\n\n", strings.Join(synth.Presets(), ", "))
		fs.PrintDefaults()
	}
	// Flags may come before or after the preset name.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(pos) == 0:
		fmt.Fprintln(stderr, "tilelab synth: want one PRESET, got none")
	case len(pos) > 1:
		fmt.Fprintf(stderr, "tilelab synth: want one PRESET, got %q\n", pos)
	case *out == "":
		fmt.Fprintln(stderr, "tilelab synth: -o OUT.gguf is required")
	}
	if len(pos) != 1 || *out == "" {
		fs.Usage()
		return errUsage
	}
	preset := pos[0]
	if _, err := synth.Lookup(preset); err != nil {
		return err
	}
	q := tensor.F32
	if !strings.HasPrefix(preset, "tiny-") {
		q = tensor.Q4_0
	}
	if *quant != "" {
		var err error
		if q, err = synth.ParseQuant(*quant); err != nil {
			return err
		}
	}
	o := synth.Options{Quant: q, Layers: *layers, Vocab: *vocab, Seed: *seed}
	h, err := synth.Header(preset, o)
	if err != nil {
		return err
	}
	if !*quiet {
		last := time.Now()
		o.Progress = func(done, total int64) {
			if now := time.Now(); now.Sub(last) >= time.Second || done == total && total > 1<<30 {
				last = now
				fmt.Fprintf(stderr, "\r%s: %5.1f%% of %s", *out, 100*float64(done)/float64(max(total, 1)), synthBytes(total))
				if done == total {
					fmt.Fprintln(stderr)
				}
			}
		}
	}
	start := time.Now()
	if err := synth.WriteFile(*out, preset, o); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "wrote %s: %s %v, %d layers, %d tensors, %s in %.2f s (%s/s)\n",
		*out, preset, q, synthLayers(h), len(h.Tensors), synthBytes(h.Size()), el.Seconds(), synthBytes(int64(float64(h.Size())/el.Seconds())))
	return nil
}

func synthLayers(h *gguf.File) uint64 {
	n, _ := h.Uint(h.Architecture() + ".block_count")
	return n
}

// synthBytes formats a byte count in decimal units, as disk sizes are quoted.
func synthBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
