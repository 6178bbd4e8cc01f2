// Package testdata finds the shared test data (small real GGUF files, llama.cpp's logits and tokenizer vectors) for
// tests in any package: $TILELAB_TESTDATA when set, else ../shared/testdata beside the module root (the folder
// holding go.mod), which is where the checkout and CI keep it. Tests run in their package's folder, so a relative
// path would differ per package.
package testdata

import (
	"os"
	"path/filepath"
	"testing"
)

// Find returns the test data folder, or "" when there is none (for fuzz seed corpora that use what they find).
func Find() string {
	if d := os.Getenv("TILELAB_TESTDATA"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "testdata")
			if _, err := os.Stat(d); err != nil {
				return ""
			}
			return d
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Dir returns the test data folder, failing the test with what to do when it cannot be found.
func Dir(tb testing.TB) string {
	tb.Helper()
	d := Find()
	if d == "" {
		tb.Fatal("test data not found: expected ../shared/testdata beside the module root, or set TILELAB_TESTDATA")
	}
	return d
}

// Path joins elems onto Dir.
func Path(tb testing.TB, elems ...string) string {
	tb.Helper()
	return filepath.Join(append([]string{Dir(tb)}, elems...)...)
}
