package reference

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	testdataset "tilelab/internal/testdata"
)

// testdataDir finds ../shared/testdata beside the module root, or $TILELAB_TESTDATA.
func testdataDir(t testing.TB) string { return testdataset.Dir(t) }

func readFloats(t *testing.T, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func readTokens(t *testing.T, path string) []int32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int32, len(raw)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// compare returns the cosine similarity and the relative L2 error ‖a−b‖/‖b‖.
func compare(a, b []float32) (cos, relL2 float64) {
	var ab, aa, bb, dd float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
		dd += (x - y) * (x - y)
	}
	return ab / math.Sqrt(aa*bb), math.Sqrt(dd / bb)
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func TestTinyQwen3MoEMatchesLlamaCpp(t *testing.T) {
	td := testdataDir(t)
	ref := filepath.Join(td, "reference", "tiny-qwen3moe-q4_0")
	tokens := readTokens(t, filepath.Join(ref, "prompt-tokens.i32"))
	want := readFloats(t, filepath.Join(ref, "logits-last.f32"))
	var summary struct {
		Argmax int `json:"argmax"`
	}
	raw, err := os.ReadFile(filepath.Join(ref, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &summary); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(td, "models", "tiny-qwen3moe-q4_0.gguf")
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"float32 activations", Options{}},
		{"activations rounded through Q8_0 as llama.cpp does", Options{QuantizeActivations: true}},
	} {
		t.Run(c.name+" give llama.cpp's argmax and logits", func(t *testing.T) {
			start := time.Now()
			rows, err := Forward(model, tokens, c.o)
			if err != nil {
				t.Fatal(err)
			}
			got := rows[0]
			if len(got) != len(want) {
				t.Fatalf("%d logits, want %d", len(got), len(want))
			}
			cos, rel := compare(got, want)
			t.Logf("%s: cosine %.7f, relative L2 %.3g, argmax %d (llama.cpp %d), %v", c.name, cos, rel, argmax(got), summary.Argmax, time.Since(start))
			if argmax(got) != summary.Argmax {
				t.Errorf("argmax %d, llama.cpp's is %d", argmax(got), summary.Argmax)
			}
			if cos < 0.9995 {
				t.Errorf("cosine similarity %.6f < 0.9995", cos)
			}
		})
	}
}
