package main

import (
	"strings"
	"testing"
	"time"
)

func TestDemoRunsEverySection(t *testing.T) {
	start := time.Now()
	code, stdout, stderr := runCmd("demo", "--reps", "1", "--pp", "16", "--tg", "4", "--cache", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	t.Logf("demo with --reps 1 took %v", time.Since(start))
	for _, want := range []string{
		"1. This machine", "> env", "amx ",
		"2. One model file, loaded in two modes", "> load synth:tiny-moe as=cpu", "> load synth:tiny-moe amx=attn as=amx",
		"3. Where each weight went, and why", "> placement amx layer=0", "attention projection, amx=attn",
		"4. The GPU modes, planned", "CUDA0", "CUDA_Host",
		"5. A short generation", "> generate \"Once upon a time\" model=cpu n=24", "generation (tok/s)",
		"6. The four modes, timed", "cpu+gpu+amx",
		"7. Where the time goes", "MUL_MAT_ID",
		"8. Is every mode right?", "NaN/Inf ops",
		"9. The seed's question at full size", "364.5",
		"The tour took",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if strings.Contains(stdout, "this step failed") {
		t.Errorf("a step failed:\n%s", stdout)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s", stdout)
	}
}

func TestDemoFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout for exit 0, stderr otherwise
	}{
		{"--script prints the commands with the flags filled in", []string{"demo", "--script", "--pp", "7"}, 0, "profile cpu pp=7 by=op"},
		{"--script takes another model", []string{"demo", "--script", "--model", "synth:tiny-dense"}, 0, "load synth:tiny-dense amx=attn as=amx"},
		{"a model path with a space is quoted, so the command reads it as one word", []string{"demo", "--script", "--model", `/m/my "x".gguf`}, 0, `load "/m/my \"x\".gguf" amx=attn as=amx`},
		{"an unknown flag is a usage error", []string{"demo", "--fast"}, 2, "flag provided but not defined: -fast"},
		{"an argument is a usage error", []string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{"zero repetitions are refused", []string{"demo", "--reps", "0"}, 2, "must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(tt.args...)
			got := stdout
			if tt.code != 0 {
				got = stderr
			}
			if code != tt.code || !strings.Contains(got, tt.out) {
				t.Errorf("exit %d (want %d); want %q in:\n%s", code, tt.code, tt.out, got)
			}
		})
	}
}

func TestDemoScriptParses(t *testing.T) {
	steps := parseDemo("## A\n# why\nload $model as=x   # note\n\nbench x reps=$reps\n", map[string]string{"model": "synth:tiny-moe", "reps": "2"})
	want := []demoStep{{'h', "A"}, {'t', "why"}, {'c', "load synth:tiny-moe as=x   # note"}, {'c', "bench x reps=2"}}
	if len(steps) != len(want) {
		t.Fatalf("got %d steps %v, want %v", len(steps), steps, want)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, steps[i], want[i])
		}
	}
}
