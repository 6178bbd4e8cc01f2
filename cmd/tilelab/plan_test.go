package main

import (
	"regexp"
	"strings"
	"testing"

	testdataset "tilelab/internal/testdata"
)

// tinyModel is the shared test data's small Qwen3-MoE file, found beside the module root or at $TILELAB_TESTDATA.
func tinyModel(t *testing.T) string {
	return testdataset.Path(t, "models", "tiny-qwen3moe-q4_0.gguf")
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e strings.Builder
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// bufferLine finds "NAME   123.4 MiB" in a totals table and returns the number as printed.
func bufferLine(out, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+([0-9.]+) MiB`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestPlanCommand(t *testing.T) {
	tiny := tinyModel(t)
	cases := []struct {
		name   string
		args   []string
		code   int
		lines  map[string]string // buffer type → MiB as printed; "" means the row must be absent
		stdout []string
		stderr []string
	}{
		{"a file plans on the CPU alone by default", []string{"plan", "-m", tiny}, 0,
			map[string]string{"CPU": "43.8", "AMX": "", "CUDA0": ""}, []string{"amx=off ngl=0"}, nil},
		{"amx=attn with one GPU layer splits the file three ways", []string{"plan", "-m", tiny, "--amx", "attn", "--ngl", "1"}, 0,
			map[string]string{"AMX": "0.3", "CUDA0": "0.5", "CUDA_Host": "43.0", "CPU": ""}, []string{"gpu=on"}, nil},
		{"--tensors adds the per-tensor table with reasons", []string{"plan", "-m", tiny, "--amx", "all", "--tensors"}, 0,
			nil, []string{"name", "reason", "blk.0.ffn_up_exps.weight", "F32 tensors are not packed for AMX", "(packed"}, nil},
		{"the seed's CPU+AMX table: 486.0 MiB of attention in AMX", []string{"plan", "-m", "synth:qwen3-30b-a3b", "--quant", "q4_0", "--amx", "attn"}, 0,
			map[string]string{"AMX": "486.0", "CPU": "15934.6", "CUDA0": ""}, []string{"(synthetic qwen3moe, q4_0)"}, nil},
		{"the seed's hybrid table: 364.5 MiB in AMX and about 4.0 GB on CUDA0 at ngl 12", []string{"plan", "-m", "synth:qwen3-30b-a3b", "--quant", "q4_0", "--amx", "attn", "--ngl", "12", "--gpu"}, 0,
			map[string]string{"AMX": "364.5", "CUDA0": "4021.7", "CUDA_Host": "12034.4", "CPU": ""}, nil, nil},
		{"--layers shrinks a preset", []string{"plan", "-m", "synth:qwen3-30b-a3b", "--layers", "2", "--amx", "attn"}, 0,
			map[string]string{"AMX": "20.2"}, nil, nil},
		{"an unknown preset is named", []string{"plan", "-m", "synth:qwen9"}, 1, nil, nil, []string{`"qwen9"`}},
		{"a type synth cannot write is named", []string{"plan", "-m", "synth:tiny-moe", "--quant", "q9_9"}, 1, nil, nil, []string{`"q9_9"`}},
		{"a missing -m is a usage error", []string{"plan"}, 2, nil, nil, []string{"-m FILE|synth:PRESET is required"}},
		{"an unknown amx mode is named", []string{"plan", "-m", tiny, "--amx", "most"}, 1, nil, nil, []string{`amx="most" is not a placement mode`}},
		{"--quant on a file is refused", []string{"plan", "-m", tiny, "--quant", "q8_0"}, 1, nil, nil, []string{"--quant and --layers shape synth: presets"}},
		{"a missing file is named", []string{"plan", "-m", "/nonexistent.gguf"}, 1, nil, nil, []string{"/nonexistent.gguf"}},
		{"a stray argument is a usage error", []string{"plan", "-m", tiny, "extra"}, 2, nil, nil, []string{`unexpected argument "extra"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCmd(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			for bt, want := range c.lines {
				if got := bufferLine(out, bt); got != want {
					t.Errorf("%s row shows %q MiB, want %q\n%s", bt, got, want, out)
				}
			}
			for _, s := range c.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range c.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
}
