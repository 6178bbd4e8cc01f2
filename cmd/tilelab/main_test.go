package main

import (
	"strings"
	"testing"
)

func TestUnknownSubcommandsAreRefusedWithASuggestion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plna"}, `unknown command "plna"; did you mean "plan"?`},
		{[]string{"bnch", "-m", "x"}, `did you mean "bench"?`},
		{[]string{"xyzzy"}, `unknown command "xyzzy"`},
	} {
		t.Run(strings.Join(c.args, " ")+" exits 2 and says so", func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := run(c.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), c.want)
			}
		})
	}
	t.Run("no arguments print the usage and exit 2", func(t *testing.T) {
		var stdout, stderr strings.Builder
		if code := run(nil, &stdout, &stderr); code != 2 || !strings.Contains(stdout.String(), "usage: tilelab COMMAND") {
			t.Errorf("exit %d, stdout %q", code, stdout.String())
		}
	})
}
