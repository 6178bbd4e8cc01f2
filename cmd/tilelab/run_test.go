package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunWritesReport(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "x.tlab")
	os.WriteFile(script, []byte("# a tiny experiment\nparam who=world amx=all\nprint hello $who\nplan synth:tiny-moe amx=off,$amx\n"), 0o644)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCmd("run", script, "--out", out, "who=tilelab")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "hello tilelab") || !strings.Contains(stdout, "amx=all ngl=0") {
		t.Errorf("stdout:\n%s", stdout)
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil || !strings.Contains(string(report), "## `plan synth:tiny-moe amx=off,all`\n\nAs written: `plan synth:tiny-moe amx=off,$amx`") || !strings.Contains(string(report), ".png)") {
		t.Errorf("report.md (%v):\n%s", err, report)
	}
	var doc struct {
		Environment map[string]string
		Results     []struct{ Command string }
	}
	data, _ := os.ReadFile(filepath.Join(out, "results.json"))
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Results) != 1 || doc.Environment["tilelab"] == "" {
		t.Errorf("results.json (%v): %s", err, data)
	}
	for _, ext := range []string{"png", "svg"} {
		if m, _ := filepath.Glob(filepath.Join(out, "*."+ext)); len(m) != 1 {
			t.Errorf("%s charts: %v", ext, m)
		}
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.tlab")
	os.WriteFile(bad, []byte("print before\nplan synth:tiny-moe\nbench thread=4\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no script is a usage error", []string{"run"}, 2, "usage: tilelab run"},
		{"an unknown flag is a usage error", []string{"run", bad, "--bogus"}, 2, "unknown flag --bogus"},
		{"a missing script is named", []string{"run", filepath.Join(dir, "none.tlab"), "--out", filepath.Join(dir, "o1")}, 1, "cannot read script"},
		{"a script error shows the line and the hint", []string{"run", bad, "--out", filepath.Join(dir, "o2")}, 1, "did you mean 'threads'?"},
		{"an undeclared parameter is refused", []string{"run", bad, "--out", filepath.Join(dir, "o3"), "x=1"}, 1, "declares no parameter 'x'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	if report, err := os.ReadFile(filepath.Join(dir, "o2", "report.md")); err != nil || !strings.Contains(string(report), "plan synth:tiny-moe") {
		t.Errorf("a failed script still reports what ran before the failure (%v):\n%s", err, report)
	}
	for _, o := range []string{"o1", "o3"} {
		if _, err := os.Stat(filepath.Join(dir, o)); !os.IsNotExist(err) {
			t.Errorf("a script that ran nothing left a report folder %s behind (stat: %v)", o, err)
		}
	}
}
