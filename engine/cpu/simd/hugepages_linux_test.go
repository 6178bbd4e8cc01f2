package simd

import (
	"bufio"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"tilelab/engine/tensor"
)

// BenchmarkGEMVHugePages asks whether decoding would stream weights faster from transparent huge pages: the same
// Q4_0 weights (36 MiB) in ordinary Go heap memory and in anonymous memory advised MADV_HUGEPAGE, one thread.
// With 4 KiB pages the hardware prefetchers stop at every page boundary and every page costs a TLB walk; model
// weights are mapped from the GGUF file in 4 KiB pages. The log says how much of the process's memory the kernel
// really backed with huge pages.
func BenchmarkGEMVHugePages(b *testing.B) {
	k, n := 4096, 16384
	r := rand.New(rand.NewPCG(1, 1))
	heap := randWeights(r, tensor.Q4_0, n, k)
	const huge = 2 << 20
	mem, err := unix.Mmap(-1, 0, len(heap)+huge, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Madvise(mem, unix.MADV_HUGEPAGE); err != nil {
		b.Skipf("madvise(MADV_HUGEPAGE): %v", err)
	}
	thp := mem[:len(heap)]
	copy(thp, heap)
	a := make([]byte, k/32*34)
	quantizeQ8Generic(a, randFloats(r, k))
	dst := make([]float32, n)
	for _, c := range []struct {
		name string
		w    []byte
	}{{"heap", heap}, {"hugepages", thp}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.w)))
			for b.Loop() {
				if err := MatMul(tensor.Q4_0, c.w, k, a, 1, dst, n, 0, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Logf("AnonHugePages of this process: %s (the huge-page copy is %d MiB)", anonHugePages(), len(thp)>>20)
}

// anonHugePages reads the process's AnonHugePages from /proc/self/smaps_rollup, or says why it cannot.
func anonHugePages() string {
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "AnonHugePages:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "not reported"
}
