package simd

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// BenchmarkGEMV streams weight matrices larger than the caches against one activation row, as decoding does;
// the reported MB/s is weight bytes per second (b.SetBytes), to compare with BenchmarkMemRead.
func BenchmarkGEMV(b *testing.B) {
	k, n := 4096, 16384 // 36 MiB of Q4_0, 68 MiB of Q8_0: past this machine's 32 MiB L3
	if testing.Short() {
		n = 256 // in cache: the kernels' compute speed alone
	}
	for _, wt := range []tensor.DType{tensor.Q4_0, tensor.Q8_0} {
		r := rand.New(rand.NewPCG(1, 1))
		w := randWeights(r, wt, n, k)
		a := make([]byte, k/32*34)
		quantizeQ8Generic(a, randFloats(r, k))
		dst := make([]float32, n)
		for _, fam := range families() {
			b.Run(fmt.Sprintf("%v/%s", wt, fam.name), func(b *testing.B) {
				defer use(fam)()
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					if err := MatMul(wt, w, k, a, 1, dst, n, 0, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGEMM is prompt processing: many activation rows against a weight matrix that fits in L2/L3; the
// metric is GOP/s (2·m·n·k per product).
func BenchmarkGEMM(b *testing.B) {
	for _, s := range []struct{ m, n, k int }{{512, 512, 2048}, {32, 768, 2048}, {512, 2048, 768}} {
		for _, wt := range []tensor.DType{tensor.Q4_0, tensor.Q8_0} {
			r := rand.New(rand.NewPCG(2, 2))
			w := randWeights(r, wt, s.n, s.k)
			a := make([]byte, s.m*s.k/32*34)
			quantizeQ8Generic(a, randFloats(r, s.m*s.k))
			dst := make([]float32, s.m*s.n)
			for _, fam := range fastFamilies() {
				b.Run(fmt.Sprintf("%v/m=%d,n=%d,k=%d/%s", wt, s.m, s.n, s.k, fam.name), func(b *testing.B) {
					defer use(fam)()
					for b.Loop() {
						if err := MatMul(wt, w, s.k, a, s.m, dst, s.n, 0, s.n); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
				})
			}
		}
	}
}

// BenchmarkGEMVParallel splits one large GEMV over a worker pool of GOMAXPROCS workers in chunks of 64 rows, as
// the CPU backend does when decoding; MB/s is weight bytes per second over all workers. The weights (about 600 MiB
// of Q4_0, 1.1 GiB of Q8_0; 36 and 68 MiB with -short) are meant to exceed the last-level cache.
func BenchmarkGEMVParallel(b *testing.B) {
	k, n := 4096, 262144
	if testing.Short() {
		n = 16384
	}
	p := pool.New(runtime.GOMAXPROCS(0))
	defer p.Close()
	for _, wt := range []tensor.DType{tensor.Q4_0, tensor.Q8_0} {
		r := rand.New(rand.NewPCG(1, 1))
		w := fastRandBlocks(r, wt, n, k)
		a := make([]byte, k/32*34)
		quantizeQ8Generic(a, randFloats(r, k))
		dst := make([]float32, n)
		for _, fam := range fastFamilies() {
			b.Run(fmt.Sprintf("%v/%s/threads=%d", wt, fam.name, p.Threads()), func(b *testing.B) {
				defer use(fam)()
				b.SetBytes(int64(len(w)))
				const per = 64
				for b.Loop() {
					p.Run(n/per, func(c, _ int) {
						if err := MatMul(wt, w, k, a, 1, dst, n, c*per, (c+1)*per); err != nil {
							panic(err)
						}
					})
				}
			})
		}
	}
}

// fastRandBlocks fills n rows of k elements of a block type with random bytes and small positive scales, quickly
// enough for gigabyte matrices.
func fastRandBlocks(r *rand.Rand, wt tensor.DType, n, k int) []byte {
	w := make([]byte, n*wt.RowBytes(k))
	for i := 0; i+8 <= len(w); i += 8 {
		binary.LittleEndian.PutUint64(w[i:], r.Uint64())
	}
	bb := wt.BlockBytes()
	for b := 0; b < len(w)/bb; b++ {
		binary.LittleEndian.PutUint16(w[b*bb:], 0x2000+uint16(b&0x3ff)) // about 0.008 to 0.016
	}
	return w
}

// BenchmarkSoftmax and BenchmarkSwiGLU time one attention row and one expert's activation.
func BenchmarkSoftmax(b *testing.B) {
	x := randFloats(rand.New(rand.NewPCG(3, 3)), 512)
	dst := make([]float32, len(x))
	for _, fam := range families() {
		b.Run(fam.name, func(b *testing.B) {
			defer use(fam)()
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				if err := Softmax(dst, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSwiGLU(b *testing.B) {
	r := rand.New(rand.NewPCG(4, 4))
	g, u := randFloats(r, 768), randFloats(r, 768)
	dst := make([]float32, len(g))
	for _, fam := range families() {
		b.Run(fam.name, func(b *testing.B) {
			defer use(fam)()
			b.SetBytes(int64(4 * len(g)))
			for b.Loop() {
				if err := SwiGLU(dst, g, u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
