package simd

import (
	"math/rand/v2"
	"testing"

	"tilelab/engine/tensor"
)

// The decode loop must allocate nothing, so neither may any kernel it calls.
func TestKernelsAllocateNothing(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	const k, n = 2048, 64
	wq := randWeights(r, tensor.Q4_0, n, k)
	wf := randWeights(r, tensor.F16, n, k)
	x := randFloats(r, 8*k)
	a := make([]byte, 8*k/32*34)
	dst := make([]float32, 8*n)
	row := make([]float32, k)
	calls := map[string]func(){
		"QuantizeQ8_0":      func() { QuantizeQ8_0(a, x) },
		"MatMul, one row":   func() { MatMul(tensor.Q4_0, wq, k, a, 1, dst, n, 0, n) },
		"MatMul, many rows": func() { MatMul(tensor.Q4_0, wq, k, a, 8, dst, n, 0, n) },
		"MatMulF":           func() { MatMulF(tensor.F16, wf, k, x, 8, dst, n, 0, n) },
		"RMSNorm":           func() { RMSNorm(row, x[:k], x[k:2*k], 1e-6) },
		"Softmax":           func() { Softmax(row, x[:k]) },
		"SwiGLU":            func() { SwiGLU(row, x[:k], x[k:2*k]) },
		"RoPE":              func() { RoPE(row, x[:k], 128, 128, 77, 1e6, true) },
	}
	for _, fam := range families() {
		for name, call := range calls {
			t.Run(fam.name+" "+name+" allocates nothing", func(t *testing.T) {
				defer use(fam)()
				if got := testing.AllocsPerRun(5, call); got != 0 {
					t.Fatalf("%v allocations per call", got)
				}
			})
		}
	}
}
