package simd

import (
	"runtime"
	"testing"

	"tilelab/engine/pool"
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

// BenchmarkMemReadParallel is the all-cores yardstick: each iteration every worker of a GOMAXPROCS pool streams
// its own 64 MiB buffer; MB/s is the total over all workers.
func BenchmarkMemReadParallel(b *testing.B) {
	if !hasAVX512VNNI() {
		b.Skip("no AVX-512 here: the read yardstick uses 512-bit loads")
	}
	const size = 64 << 20
	p := pool.New(runtime.GOMAXPROCS(0))
	defer p.Close()
	bufs := make([][]byte, p.Threads())
	for i := range bufs {
		bufs[i] = make([]byte, size)
		for j := range bufs[i] {
			bufs[i][j] = byte(j)
		}
	}
	sinks := make([]uint64, len(bufs)*8)
	b.SetBytes(int64(size * len(bufs)))
	b.ResetTimer()
	for b.Loop() {
		p.Run(len(bufs), func(c, _ int) { sinks[c*8] ^= memReadAVX512(&bufs[c][0], size) })
	}
}
