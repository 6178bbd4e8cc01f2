package simd

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkMemRead is the yardstick for the GEMV figures: single-thread read bandwidth over a buffer far larger
// than the caches (256 MiB), with AVX-512 loads when the CPU has them.
func BenchmarkMemRead(b *testing.B) {
	if !hasAVX512VNNI() {
		b.Skip("no AVX-512 here: the read yardstick uses 512-bit loads")
	}
	buf := make([]byte, 256<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	var sink uint64
	for b.Loop() {
		sink ^= memReadAVX512(&buf[0], len(buf))
	}
	_ = sink
}

// BenchmarkMemReadParallel is the all-cores yardstick: every worker streams its own 64 MiB buffer; MB/s is the
// total over all workers (GOMAXPROCS of them).
func BenchmarkMemReadParallel(b *testing.B) {
	if !hasAVX512VNNI() {
		b.Skip("no AVX-512 here: the read yardstick uses 512-bit loads")
	}
	const size = 64 << 20
	bufs := make([][]byte, runtime.GOMAXPROCS(0))
	for i := range bufs {
		bufs[i] = make([]byte, size)
		for j := range bufs[i] {
			bufs[i][j] = byte(j)
		}
	}
	var next atomic.Int32
	b.SetBytes(size)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := bufs[int(next.Add(1)-1)%len(bufs)]
		var sink uint64
		for pb.Next() {
			sink ^= memReadAVX512(&buf[0], len(buf))
		}
		_ = sink
	})
}
