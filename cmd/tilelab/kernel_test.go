package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKernelCommandRefusesBadConnectionFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no connection file is a usage error", []string{"kernel"}, 2, "usage: tilelab kernel -f CONNECTION_FILE"},
		{"a missing file is named", []string{"kernel", "-f", filepath.Join(dir, "none.json")}, 1, "none.json"},
		{"a file that is not JSON says so", []string{"kernel", "-f", write("bad.json", "{")}, 1, "connection file"},
		{"an unknown transport is refused", []string{"kernel", "-f", write("t.json", `{"transport":"udp","ip":"127.0.0.1"}`)}, 1, `transport "udp" is not supported`},
		{"an unknown signature scheme is refused", []string{"kernel", "-f", write("s.json", `{"ip":"127.0.0.1","key":"k","signature_scheme":"hmac-md5"}`)}, 1, `signature_scheme "hmac-md5" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d (want %d); want %q in:\n%s", code, tt.code, tt.want, stderr)
			}
		})
	}
}
