package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallCommand(t *testing.T) {
	prefix := t.TempDir()
	t.Setenv("JUPYTER_DATA_DIR", t.TempDir()) // a regression to a user install lands here, not in the real home
	dir := filepath.Join(prefix, "share", "jupyter", "kernels", "tl-test")
	tests := []struct {
		name string
		args []string
		code int
		want string // in stdout for exit 0, stderr otherwise
	}{
		{"an empty --prefix is a usage error, not a user install", []string{"install", "--prefix="}, 2, "--prefix needs a folder"},
		{"two scopes are refused", []string{"install", "--user", "--sys-prefix"}, 1, "choose one of"},
		{"--prefix installs under P/share/jupyter/kernels", []string{"install", "--prefix", prefix, "--name", "tl-test"}, 0, "installed kernelspec in " + dir},
		{"--uninstall removes it", []string{"install", "--prefix", prefix, "--name", "tl-test", "--uninstall"}, 0, "removed " + dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(tt.args...)
			got := stdout
			if tt.code != 0 {
				got = stderr
			}
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Errorf("exit %d (want %d); want %q in:\n%s", code, tt.code, tt.want, got)
			}
		})
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after --uninstall: %v", dir, err)
	}
}
