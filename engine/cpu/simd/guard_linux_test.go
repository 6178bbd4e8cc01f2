package simd

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"

	"tilelab/engine/tensor"
)

// guarded returns a slice of n bytes that ends exactly where an inaccessible page begins, so a kernel reading one
// byte past its input faults instead of passing silently (weights are mmap views of a file that can end there).
func guarded(t *testing.T, n int) []byte {
	t.Helper()
	page := unix.Getpagesize()
	size := (n+page-1)/page*page + page
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	if err := unix.Mprotect(mem[size-page:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return mem[size-page-n : size-page]
}

func TestKernelsReadNothingPastTheirInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, fam := range families() {
		for _, wt := range []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.F32, tensor.F16, tensor.BF16} {
			for _, c := range []mmCase{{64, 1, 5, 0, 5}, {96, 3, 4, 0, 4}, {32, 5, 1, 0, 1}} {
				t.Run(fmt.Sprintf("%s kernels stay inside %v weights and activations at %v", fam.name, wt, c), func(t *testing.T) {
					defer use(fam)()
					w := guarded(t, wt.RowBytes(c.k)*c.n)
					copy(w, randWeights(r, wt, c.n, c.k))
					dst := make([]float32, c.m*c.n)
					if wt.Quantized() {
						a := guarded(t, c.m*c.k/32*34)
						quantizeQ8Generic(a, randFloats(r, c.m*c.k))
						if err := MatMul(wt, w, c.k, a, c.m, dst, c.n, c.n0, c.n1); err != nil {
							t.Fatal(err)
						}
						return
					}
					xb := guarded(t, 4*c.m*c.k)
					x := unsafeFloats(xb)
					copy(x, randFloats(r, c.m*c.k))
					if err := MatMulF(wt, w, c.k, x, c.m, dst, c.n, c.n0, c.n1); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}
