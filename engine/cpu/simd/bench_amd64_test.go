package simd

import "testing"

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
