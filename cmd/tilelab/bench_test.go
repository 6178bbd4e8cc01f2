package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchCommand(t *testing.T) {
	model := tinyModel(t)
	t.Run("a small run prints a markdown row per test", func(t *testing.T) {
		code, out, errOut := runCmd("bench", "-m", model, "-p", "8", "-n", "2", "-r", "1", "-t", "1", "-q")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, " pp8 |") || !strings.Contains(out, " tg2 |") {
			t.Fatalf("output:\n%s", out)
		}
	})
	t.Run("-o writes JSON with the raw repetitions to a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "b.json")
		code, _, errOut := runCmd("bench", "-m", model, "-p", "0", "-n", "2", "-r", "2", "-t", "1", "--format", "json", "-o", path, "-q")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Results []struct {
				Test    string    `json:"test"`
				Samples []float64 `json:"samples_ts"`
			} `json:"results"`
		}
		if err := json.Unmarshal(data, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != 1 || res.Results[0].Test != "tg2" || len(res.Results[0].Samples) != 2 {
			t.Fatalf("%s", data)
		}
	})
	for _, c := range []struct{ name, want string }{
		{"--mode gpu", "unknown mode"},
		{"--format xml", "want md, json or csv"},
		{"--amx some", "want all or attn"},
		{"-p x", "not a non-negative integer"},
		{"-r 0", "-r 0: want at least one repetition"},
	} {
		t.Run("a bad flag "+c.name+" is a usage error", func(t *testing.T) {
			args := append([]string{"bench", "-m", model}, strings.Fields(c.name)...)
			code, _, errOut := runCmd(args...)
			if code != 2 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %s", code, errOut)
			}
		})
	}
	t.Run("a missing -m is a usage error", func(t *testing.T) {
		if code, _, errOut := runCmd("bench"); code != 2 || !strings.Contains(errOut, "-m FILE is required") {
			t.Fatalf("exit %d, stderr %s", code, errOut)
		}
	})
}
