package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEnvCommand(t *testing.T) {
	keys := []string{"cpu", "cores", "cpu flags", "amx", "gpus", "os", "go", "tilelab"}
	t.Run("the table names every fact", func(t *testing.T) {
		code, stdout, stderr := runCmd("env")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, k := range keys {
			if !strings.Contains(stdout, "\n"+k+" ") {
				t.Errorf("no %q row in:\n%s", k, stdout)
			}
		}
		if !strings.Contains(stdout, "tilelab     "+Version) {
			t.Errorf("the version %s is missing:\n%s", Version, stdout)
		}
	})
	t.Run("--json is one object with the same facts", func(t *testing.T) {
		code, stdout, stderr := runCmd("env", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(stdout), &m); err != nil {
			t.Fatalf("not JSON (%v):\n%s", err, stdout)
		}
		for _, k := range keys {
			if m[k] == "" {
				t.Errorf("%q is empty in %v", k, m)
			}
		}
		if !strings.HasPrefix(m["gpus"], "none: ") && !strings.Contains(m["gpus"], "GiB") {
			t.Errorf("gpus neither lists devices nor says why there are none: %q", m["gpus"])
		}
	})
	t.Run("an argument is a usage error", func(t *testing.T) {
		if code, _, stderr := runCmd("env", "now"); code != 2 || !strings.Contains(stderr, "usage: tilelab env") {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
}
