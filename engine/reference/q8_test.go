package reference

import (
	"math"
	"math/rand"
	"testing"

	mlx "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"tilelab/engine/tensor"
)

// TestQ8RoundMatchesTheQuantizer checks the in-graph Q8_0 round trip against engine/tensor's reference
// quantize_row_q8_0 followed by dequantization, on random rows spanning many magnitudes (fp16 normal and
// subnormal scales included).
func TestQ8RoundMatchesTheQuantizer(t *testing.T) {
	b, err := newBackend()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	e, err := mlx.NewExec(b, q8Round)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	rng := rand.New(rand.NewSource(7))
	const rows, k = 64, 96
	x := make([]float32, rows*k)
	for r := 0; r < rows; r++ {
		scale := math.Pow(10, float64(r%12)-8) // 1e-8 .. 1e3
		for j := 0; j < k; j++ {
			x[r*k+j] = float32(rng.NormFloat64() * scale)
		}
	}
	out, err := e.Exec(tensors.FromFlatDataAndDimensions(x, rows, k))
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out[0])
	q := make([]byte, tensor.Q8_0.RowBytes(len(x)))
	if err := tensor.Quantize(tensor.Q8_0, x, q); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(x))
	if err := tensor.Dequantize(tensor.Q8_0, q, want); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := range want {
		if got[i] != want[i] {
			if bad < 5 {
				t.Errorf("element %d (row %d): in-graph %g, quantizer %g (input %g)", i, i/k, got[i], want[i], x[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d elements differ", bad, len(x))
	}
}
