package tokenizer

import (
	"os"
	"path/filepath"
	"testing"

	"tilelab/engine/gguf"
)

// testdataDir finds ../shared/testdata beside the module root, or $TILELAB_TESTDATA.
func testdataDir(t testing.TB) string {
	if d := os.Getenv("TILELAB_TESTDATA"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "testdata")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory; set TILELAB_TESTDATA")
		}
		dir = parent
	}
}

// openTokenizer reads a GGUF file's tokenizer.
func openTokenizer(path string) (*Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return FromGGUF(f)
}
