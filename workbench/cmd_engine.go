package workbench

import (
	"errors"

	"tilelab/workbench/lang"
)

// Engine commands. Each declares its parameters here, so help, completion and docs/language.md read them in one
// place; its run function is set by the file that drives its engine package (cmd_model.go, cmd_bench.go, ...).

var (
	quantTypes = []string{"q4_0", "q8_0", "f16", "bf16", "f32"}
	modeNames  = []string{"cpu", "cpu+amx", "cpu+gpu", "cpu+gpu+amx"}
	amxModes   = []string{"off", "attn", "all"}
)

func positive(v lang.Value) error { return atLeast(1)(v) }

// A negative temperature or a top_p outside (0, 1] would sample as if it were something else, silently.

func nonNegative(v lang.Value) error {
	if v.V.(float64) < 0 {
		return errors.New("must be at least 0")
	}
	return nil
}

func fraction(v lang.Value) error {
	if x := v.V.(float64); x <= 0 || x > 1 {
		return errors.New("must be above 0 and at most 1")
	}
	return nil
}

// kvTypes are the KV cache element types a model can keep.
var kvTypes = []string{"f32", "f16"}

func engineSpecs() []*command {
	model := lang.Param{Name: "model", Kind: lang.String, Positional: true, Doc: "a loaded model's name (default: the last loaded)"}
	return []*command{
		{group: "models", spec: &lang.Spec{
			Name: "synth", Summary: "write a synthetic GGUF: a real architecture with random weights",
			Example: "synth tiny-moe quant=q4_0 out=models/tiny-moe.gguf",
			Params: []lang.Param{
				{Name: "preset", Kind: lang.String, Positional: true, Required: true, Doc: "the architecture and size", Complete: presets},
				{Name: "quant", Kind: lang.Enum, Default: "q4_0", Allowed: quantTypes, Doc: "weight type of the matrices"},
				{Name: "layers", Kind: lang.Int, Doc: "override the number of layers", Check: positive},
				{Name: "vocab", Kind: lang.Path, Doc: "take the tokenizer from this GGUF"},
				{Name: "seed", Kind: lang.Int, Doc: "random seed (default: set seed=)"},
				{Name: "out", Kind: lang.Path, Required: true, Doc: "the GGUF file to write"},
			},
		}},
		{group: "models", spec: &lang.Spec{
			Name: "load", Summary: "load a GGUF file or synth:PRESET, placing every weight",
			Doc:     "A synth:PRESET source is generated into a cache folder once and reused; quant= and layers= apply to it.",
			Example: "load synth:tiny-moe quant=q4_0 amx=attn ngl=0 as=moe",
			Params: []lang.Param{
				{Name: "source", Kind: lang.Source, Positional: true, Required: true, Doc: "a .gguf path or synth:PRESET"},
				{Name: "as", Kind: lang.String, Doc: "the name to call it (default: from the file)"},
				{Name: "quant", Kind: lang.Enum, Allowed: quantTypes, Doc: "weight type (synth sources only)"},
				{Name: "layers", Kind: lang.Int, Doc: "number of layers (synth sources only)", Check: positive},
				{Name: "amx", Kind: lang.Enum, Default: "off", Allowed: amxModes, Doc: "which weights go to AMX buffers: none, attention projections, or all that fit"},
				{Name: "ngl", Kind: lang.Int, Default: "0", Doc: "layers offloaded to the GPU", Check: atLeast(0)},
				{Name: "threads", Kind: lang.Int, Doc: "worker threads (default: set threads=)", Check: positive},
				{Name: "ctx", Kind: lang.Int, Default: "2048", Doc: "context length (KV cache size)", Check: positive},
				{Name: "batch", Kind: lang.Int, Default: "512", Doc: "largest batch of tokens per forward pass", Check: positive},
				{Name: "kv", Kind: lang.Enum, Default: "f32", Allowed: kvTypes, Doc: "the KV cache's element type (f16: half the bytes, llama.cpp's default)"},
			},
		}},
		{group: "models", spec: &lang.Spec{
			Name: "models", Summary: "loaded models: name, arch, parameters, quant, mode, memory", Example: "models",
		}},
		{group: "models", spec: &lang.Spec{
			Name: "unload", Summary: "free a loaded model", Example: "unload moe",
			Params: []lang.Param{{Name: "name", Kind: lang.String, Positional: true, Required: true, Doc: "the model"}},
		}},
		{group: "models", spec: &lang.Spec{
			Name: "generate", Summary: "stream generated tokens; prompt and generation tok/s at the end",
			Example: `generate "Once upon a time" n=16`,
			Params: []lang.Param{
				{Name: "prompt", Kind: lang.String, Positional: true, Required: true, Doc: "the prompt (quote it)"},
				{Name: "model", Kind: lang.String, Doc: "a loaded model (default: the last loaded)"},
				{Name: "n", Kind: lang.Int, Default: "32", Doc: "tokens to generate", Check: positive},
				{Name: "temp", Kind: lang.Float, Default: "0", Doc: "sampling temperature; 0 is greedy", Check: nonNegative},
				{Name: "top_k", Kind: lang.Int, Doc: "keep the k most likely tokens", Check: positive},
				{Name: "top_p", Kind: lang.Float, Doc: "keep the smallest set with this much probability (above 0, at most 1)", Check: fraction},
				{Name: "seed", Kind: lang.Int, Doc: "sampling seed (default: set seed=)"},
			},
		}},
		{group: "placement", spec: &lang.Spec{
			Name: "plan", Summary: "place a model from its metadata alone (no weights read); per-buffer totals",
			Doc:     "Each combination of the lists is one plan. ngl > 0 implies a GPU; AMX and CUDA rows appear even on machines without them.",
			Example: "plan synth:qwen3-30b-a3b quant=q4_0 amx=attn ngl=0,12",
			Params: []lang.Param{
				{Name: "source", Kind: lang.Source, Positional: true, Required: true, Doc: "a .gguf path or synth:PRESET"},
				{Name: "quant", Kind: lang.Enum, Allowed: quantTypes, List: true, Doc: "weight type (synth sources only)"},
				{Name: "layers", Kind: lang.Int, Doc: "number of layers (synth sources only)", Check: positive},
				{Name: "amx", Kind: lang.Enum, Default: "all", Allowed: amxModes, List: true, Doc: "AMX policy"},
				{Name: "ngl", Kind: lang.Int, Default: "0", List: true, Doc: "layers on the GPU", Check: atLeast(0)},
				{Name: "gpu", Kind: lang.Bool, Default: "off", Doc: "plan as if a GPU were present even at ngl=0 (CUDA_Host buffers)"},
				{Name: "tensors", Kind: lang.Bool, Default: "off", Doc: "also show the per-tensor table"},
			},
		}},
		{group: "placement", spec: &lang.Spec{
			Name: "placement", Summary: "per-tensor table: type, shape, MiB, buffer type, consuming op, reason",
			Example: "placement moe match=exps layer=0",
			Params: []lang.Param{model,
				{Name: "buffer", Kind: lang.String, Doc: "only tensors in this buffer type (CPU, AMX, CUDA0, CUDA_Host)"},
				{Name: "match", Kind: lang.String, Doc: "only tensors whose name contains this"},
				{Name: "layer", Kind: lang.Int, List: true, Doc: "only these layers (e.g. 0..3; -1 is the tensors outside the layers)"},
			},
		}},
		{group: "placement", spec: &lang.Spec{
			Name: "buffers", Summary: "per-buffer-type totals in MiB (GGUF and packed bytes); a stacked bar chart",
			Example: "buffers moe", Params: []lang.Param{model},
		}},
		{group: "placement", spec: &lang.Spec{
			Name: "ops", Summary: "the forward graph's ops by type and backend: count, kernel, and why",
			Example: "ops moe tokens=1",
			Params: []lang.Param{model,
				{Name: "tokens", Kind: lang.Int, Default: "1", Doc: "batch size of the traced forward pass", Check: positive},
			},
		}},
		{group: "placement", spec: &lang.Spec{
			Name: "compare", Summary: "what moved between two loads of the same file",
			Example: "compare placement a=attn b=all",
			Params: []lang.Param{
				{Name: "what", Kind: lang.Enum, Allowed: []string{"placement"}, Positional: true, Required: true, Doc: "what to compare"},
				{Name: "a", Kind: lang.String, Required: true, Doc: "a loaded model"},
				{Name: "b", Kind: lang.String, Required: true, Doc: "another load of the same file"},
			},
		}},
		{group: "timing", spec: &lang.Spec{
			Name: "bench", Summary: "prompt and generation tok/s per mode (llama-bench semantics); a grouped bar chart",
			Doc:     "Each mode re-places the same file. Modes this machine cannot run appear as rows saying why.",
			Example: "bench moe pp=172,512 tg=128 mode=cpu,cpu+amx",
			Params: []lang.Param{model,
				{Name: "pp", Kind: lang.Int, Default: "512", List: true, Doc: "prompt lengths (0 to skip)", Check: atLeast(0)},
				{Name: "tg", Kind: lang.Int, Default: "128", List: true, Doc: "generated lengths (0 to skip)", Check: atLeast(0)},
				{Name: "mode", Kind: lang.Enum, Default: "cpu,cpu+amx", Allowed: modeNames, List: true, Doc: "placements to compare"},
				{Name: "amx", Kind: lang.Enum, Default: "all", Allowed: []string{"attn", "all"}, Doc: "AMX policy of the +amx modes"},
				{Name: "ngl", Kind: lang.Int, Default: "12", Doc: "GPU layers of the +gpu modes", Check: atLeast(0)},
				{Name: "threads", Kind: lang.Int, List: true, Doc: "worker threads (default: set threads=)", Check: positive},
				{Name: "reps", Kind: lang.Int, Doc: "repetitions (default: set reps=)", Check: positive},
				{Name: "kv", Kind: lang.Enum, Allowed: kvTypes, Doc: "the KV cache's element type (default: the model's, from load kv=)"},
			},
		}},
		{group: "timing", spec: &lang.Spec{
			Name: "profile", Summary: "per-op time breakdown; a bar chart of shares",
			Example: "profile moe pp=512 by=kernel",
			Params: []lang.Param{model,
				{Name: "pp", Kind: lang.Int, Doc: "profile a prompt of this many tokens", Check: positive},
				{Name: "tg", Kind: lang.Int, Doc: "profile this many generated tokens", Check: positive},
				{Name: "by", Kind: lang.Enum, Default: "op", Allowed: []string{"op", "backend", "layer", "kernel"}, Doc: "how to group"},
			},
		}},
		{group: "timing", spec: &lang.Spec{
			Name: "matmul", Summary: "one matrix multiply swept over shapes, types and backends; line charts",
			Doc: "Each point is timed (mean ± sd over reps) and its first rows are checked against the float32 reference. " +
				"backend=amx runs the tile kernels at every m (below its calibrated threshold a model's AMX backend runs CPU mode's own kernel on the weight's plain bytes); " +
				"where AMX is only emulated its rows show the error, not a time.",
			Example: "matmul m=1..512*2 n=4096 k=4096 type=q8_0 backend=cpu,amx",
			Params: []lang.Param{
				{Name: "m", Kind: lang.Int, Default: "1,16,128,512", List: true, Doc: "activation rows (tokens)", Check: positive},
				{Name: "n", Kind: lang.Int, Default: "4096", List: true, Doc: "weight rows (outputs)", Check: positive},
				{Name: "k", Kind: lang.Int, Default: "4096", List: true, Doc: "shared dimension", Check: positive},
				{Name: "type", Kind: lang.Enum, Default: "q8_0", Allowed: quantTypes, List: true, Doc: "weight type"},
				{Name: "backend", Kind: lang.Enum, Default: "cpu,amx", Allowed: []string{"cpu", "amx", "cuda"}, List: true, Doc: "where it runs"},
				{Name: "tile", Kind: lang.String, Doc: "AMX tile configuration (default: set tile=)"},
				{Name: "reps", Kind: lang.Int, Doc: "repetitions (default: set reps=)", Check: positive},
			},
		}},
		{group: "timing", spec: &lang.Spec{
			Name: "tiles", Summary: "AMX tile-configuration sweep; a heatmap, the best offered as set tile=",
			Example: "tiles m=512 n=2048 k=2048 type=q8_0 rows=8,16 kstep=32,64 acc=2x2,1x4",
			Params: []lang.Param{
				{Name: "m", Kind: lang.Int, Default: "512", Doc: "activation rows", Check: positive},
				{Name: "n", Kind: lang.Int, Default: "2048", Doc: "weight rows", Check: positive},
				{Name: "k", Kind: lang.Int, Default: "2048", Doc: "shared dimension", Check: positive},
				{Name: "type", Kind: lang.Enum, Default: "q8_0", Allowed: []string{"q8_0", "q4_0", "bf16", "f16"}, Doc: "weight type"},
				{Name: "rows", Kind: lang.Int, Default: "16", List: true, Doc: "rows per tile (1..16)", Check: between(1, 16)},
				{Name: "kstep", Kind: lang.Int, Default: "64", List: true, Doc: "bytes of K per tile load (32 or 64)"},
				{Name: "acc", Kind: lang.String, Default: "2x2", List: true, Doc: "accumulator tiles down x across (2x2, 1x4, 4x1, ...)"},
				{Name: "kblock", Kind: lang.Int, List: true, Doc: "int8 K values kept in the accumulators before scaling: 32, a multiple of 64, or 0 for all (default: the kernels' own)"},
				{Name: "reps", Kind: lang.Int, Doc: "repetitions (default: set reps=)", Check: positive},
			},
		}},
		{group: "timing", spec: &lang.Spec{
			Name: "calibrate", Summary: "find where AMX starts beating the CPU path, per type and batch",
			Doc: "Times MUL_MAT on the tiles and on the CPU path over a range of row counts, stores the thresholds the " +
				"AMX backend then uses, and shows them. On a machine without usable AMX nothing is timed (the emulator is " +
				"for correctness only) and it is not an error: the result says why, with the stored calibration if there is one.",
			Example: "calibrate amx types=q4_0,q8_0",
			Params: []lang.Param{
				{Name: "what", Kind: lang.Enum, Default: "amx", Allowed: []string{"amx"}, Positional: true, Doc: "what to calibrate"},
				{Name: "types", Kind: lang.Enum, Default: "q4_0,q8_0", Allowed: quantTypes, List: true, Doc: "weight types to show (the calibration always times q4_0, q8_0 and bf16, and stores them all)"},
				{Name: "threads", Kind: lang.Int, Doc: "worker threads (default: set threads=)", Check: positive},
			},
		}},
		{group: "timing", spec: &lang.Spec{
			Name: "check", Summary: "NaN/Inf scan of every op, and logits error against the float32 reference per mode",
			Example: "check moe mode=cpu,cpu+amx",
			Params: []lang.Param{model,
				{Name: "prompt", Kind: lang.String, Default: "Once upon a time", Doc: "the prompt to run"},
				{Name: "mode", Kind: lang.Enum, Default: "cpu,cpu+amx", Allowed: modeNames, List: true, Doc: "placements to check"},
			},
		}},
	}
}

// The engine commands are registered during variable initialisation, before any init function runs, so the
// files that wire each command to its package (in their init) always find the declaration there.
var _ = func() bool {
	for _, c := range engineSpecs() {
		register(c)
	}
	return true
}()
