package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"tilelab/amx"
	"tilelab/cuda"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/placement"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
)

func init() {
	register("plan", "place a model's weights from its metadata alone: per-buffer totals, --tensors for every weight", runPlan)
}

func runPlan(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("m", "", "model: a GGUF `FILE`, or synth:PRESET for a synthetic model's metadata (nothing is written)")
	quant := fs.String("quant", "", "tensor `type` of a synth: preset's weights (q4_0 when not given; q8_0, f16, bf16, f32); files keep theirs")
	layers := fs.Int("layers", 0, "repeating layers of a synth: preset (0: the preset's own)")
	amxMode := fs.String("amx", placement.AMXOff, "AMX `mode`: off, attn (attention projections, the seed's set) or all")
	ngl := fs.Int("ngl", 0, "offload the last `N` layers to CUDA0 (implies a GPU)")
	gpu := fs.Bool("gpu", false, "a GPU is present: host weights are pinned (CUDA_Host)")
	tensors := fs.Bool("tensors", false, "also print the per-tensor table (name, type, shape, MiB, buffer, op, reason)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tilelab plan -m FILE|synth:PRESET [--quant Q] [--amx off|attn|all] [--ngl N] [--gpu] [--tensors]")
		fmt.Fprintln(stderr, "\nPlaces every weight from metadata alone, so any model plans on any machine: AMX and CUDA rows")
		fmt.Fprintln(stderr, "show what those buffer types would take on a machine that has them.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *model == "" {
		fmt.Fprintln(stderr, "tilelab plan: -m FILE|synth:PRESET is required")
		fs.Usage()
		return errUsage
	}
	o := placement.Options{AMX: strings.ToLower(*amxMode), NGL: *ngl, GPU: *gpu}
	if err := o.Validate(); err != nil {
		return err
	}

	f, desc, err := planSource(*model, *quant, *layers)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := placement.FromGGUF(f, o, planRegistry())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s\n", desc, o)
	if err := p.WriteTotals(stdout); err != nil {
		return err
	}
	if *tensors {
		fmt.Fprintln(stdout)
		return p.WriteTensors(stdout)
	}
	return nil
}

// planSource opens a file's metadata, or builds a synthetic preset's in memory, and describes it in one line.
func planSource(model, quant string, layers int) (*gguf.File, string, error) {
	if preset, ok := strings.CutPrefix(model, "synth:"); ok {
		q := tensor.Q4_0
		if quant != "" {
			var err error
			if q, err = synth.ParseQuant(quant); err != nil {
				return nil, "", err
			}
		}
		f, err := synth.Header(preset, synth.Options{Quant: q, Layers: layers})
		if err != nil {
			return nil, "", err
		}
		return f, fmt.Sprintf("%s (synthetic %s, %s)", preset, f.Architecture(), q), nil
	}
	if quant != "" || layers != 0 {
		return nil, "", fmt.Errorf("--quant and --layers shape synth: presets; %s keeps the types and layers it was written with", model)
	}
	f, err := gguf.Open(model)
	if err != nil {
		return nil, "", err
	}
	return f, fmt.Sprintf("%s (%s)", model, f.Architecture()), nil
}

// planRegistry holds every buffer type a plan can name. None needs its hardware: a plan says what each would take
// on a machine that has it (AMX brings its own rule and packed sizes, which need no AMX hardware).
func planRegistry() *backend.Registry {
	reg := backend.NewRegistry()
	reg.AddBufferType(cpu.BufferType())
	reg.AddBufferType(amx.NewBufferType())
	cuda.RegisterForPlan(reg)
	return reg
}
