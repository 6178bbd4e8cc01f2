package gguf

import (
	"os"
	"path/filepath"
	"testing"
)

// testdataDir finds ../shared/testdata beside the module root (or $TILELAB_TESTDATA), or "" if it is absent.
func testdataDir() string {
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
			if _, err := os.Stat(d); err == nil {
				return d
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// realFiles lists the GGUF files in the test data.
func realFiles() []string {
	d := testdataDir()
	if d == "" {
		return nil
	}
	a, _ := filepath.Glob(filepath.Join(d, "models", "*.gguf"))
	b, _ := filepath.Glob(filepath.Join(d, "tokenizer", "*.gguf"))
	return append(a, b...)
}

// mustTestdata fails the test when the shared test data is missing: it is part of the project, not optional.
func mustTestdata(t *testing.T) string {
	t.Helper()
	d := testdataDir()
	if d == "" {
		t.Fatal("test data not found: expected ../shared/testdata beside the module root, or $TILELAB_TESTDATA")
	}
	return d
}
