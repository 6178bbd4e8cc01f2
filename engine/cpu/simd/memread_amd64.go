package simd

// memReadAVX512 streams n bytes (a multiple of 256) from p with 512-bit loads and folds them into a checksum.
//
//go:noescape
func memReadAVX512(p *byte, n int) uint64
