package amx

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestGeneratedFilesAreCurrent regenerates the kernels into a temporary directory and compares them with the
// committed ones, so the assembly, the macros and the argument structs cannot drift from the generator.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		t.Skipf("no go tool at %s to run the generator", goTool)
	}
	dir := t.TempDir()
	if out, err := exec.Command(goTool, "run", "./internal/gen", dir).CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	for _, f := range []string{"amx_encodings.h", "kernels_amd64.s", "zkernels_amd64.go", "zargs.go"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output: run go generate ./amx", f)
		}
	}
}
