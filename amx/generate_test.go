package amx

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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

// TestTileStateNeverOutlivesAnAssemblyCall reads the generated kernels: every function that touches the tiles
// loads its configuration before any other tile instruction, releases the tiles after the last one, and returns
// only after that release, calling nothing in between, so no goroutine switch can see live tile state.
func TestTileStateNeverOutlivesAnAssemblyCall(t *testing.T) {
	src, err := os.ReadFile("kernels_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	isTile := func(in string) bool {
		for _, p := range []string{"LDTILECFG", "TILE", "TDP"} {
			if strings.HasPrefix(in, p) {
				return true
			}
		}
		return false
	}
	funcs := 0
	for _, fn := range strings.Split(string(src), "\nTEXT ")[1:] {
		name, body, _ := strings.Cut(fn, "\n")
		var ins, lines []string // mnemonics (or macro names), and the whole lines
		for _, l := range strings.Split(body, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "//") && !strings.HasSuffix(l, ":") {
				ins, lines = append(ins, strings.Fields(l)[0]), append(lines, l)
			}
		}
		tiles := 0
		for _, in := range ins {
			if isTile(in) {
				tiles++
			}
		}
		if tiles == 0 {
			continue
		}
		funcs++
		t.Run(strings.Fields(name)[0]+" configures, uses and releases the tiles inside itself", func(t *testing.T) {
			configured, released := false, false
			for i, in := range ins {
				switch {
				case in == "CALL" || strings.Contains(lines[i], "(SB)"):
					t.Fatalf("instruction %d (%s) leaves the function: the goroutine could switch with the tiles live", i, lines[i])
				case strings.HasPrefix(in, "LDTILECFG"):
					if configured {
						t.Fatalf("instruction %d configures the tiles again", i)
					}
					configured = true
				case in == "TILERELEASE":
					released = true
				case isTile(in):
					if !configured || released {
						t.Fatalf("instruction %d (%s) runs while the tiles are not configured", i, in)
					}
				case in == "RET":
					if !released || i != len(ins)-1 {
						t.Fatalf("instruction %d returns (released %v, %d instructions in all)", i, released, len(ins))
					}
				}
			}
			if !released || ins[len(ins)-1] != "RET" {
				t.Fatalf("the function ends with %s, released %v", ins[len(ins)-1], released)
			}
		})
	}
	if funcs < 14 { // 12 GEMM kernels and 2 peak loops
		t.Fatalf("found %d functions using the tiles, want at least 14", funcs)
	}
}
