package testdata

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirFindsTheSharedModelOrHonoursTheVariable(t *testing.T) {
	t.Run("beside the module root", func(t *testing.T) {
		t.Setenv("TILELAB_TESTDATA", "")
		if _, err := os.Stat(Path(t, "models", "tiny-qwen3moe-q4_0.gguf")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("from TILELAB_TESTDATA", func(t *testing.T) {
		d := t.TempDir()
		t.Setenv("TILELAB_TESTDATA", d)
		if got := Path(t, "x"); got != filepath.Join(d, "x") {
			t.Fatalf("Path = %q, want %q", got, filepath.Join(d, "x"))
		}
	})
}
