package gguf

import (
	"path/filepath"
	"testing"

	testdataset "tilelab/internal/testdata"
)

// testdataDir finds ../shared/testdata beside the module root (or $TILELAB_TESTDATA), or "" if it is absent.
func testdataDir() string { return testdataset.Find() }

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
