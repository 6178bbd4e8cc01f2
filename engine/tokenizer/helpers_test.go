package tokenizer

import (
	"testing"

	"tilelab/engine/gguf"
	testdataset "tilelab/internal/testdata"
)

// testdataDir finds ../shared/testdata beside the module root, or $TILELAB_TESTDATA.
func testdataDir(t testing.TB) string { return testdataset.Dir(t) }

// openTokenizer reads a GGUF file's tokenizer.
func openTokenizer(path string) (*Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return FromGGUF(f)
}
