package simd

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"tilelab/engine/tensor"
)

// tileFunc computes a tile of dst (rows of a × rows of w) over the whole k: dst[i*ds + j] for the tile's i and j.
// Strides ws and as are in bytes, ds in elements; nb counts blocks (quantized) or 16-element steps (float).
type tileFunc func(w *byte, ws int, a *byte, as int, nb int, dst *float32, ds int)

// tileRows is the largest tile edge the generated kernels cover.
const tileRows = 4

var avx512VNNI = kernels{
	name: "avx512-vnni",
	mmQ4: func(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
		tiles(&q4VNNITiles, 18, w, k, a, m, dst, n, n0, n1)
	},
	mmQ8: func(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
		tiles(&q8VNNITiles, 34, w, k, a, m, dst, n, n0, n1)
	},
	mmF:   matMulFAVX512,
	quant: quantizeQ8Generic,
}

func init() {
	if hasAVX512VNNI() {
		impl = avx512VNNI
	}
}

// hasAVX512VNNI also requires the OS to save the upper ZMM state, which x/sys/cpu folds into HasAVX512.
func hasAVX512VNNI() bool {
	x := cpu.X86
	return x.HasAVX512 && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512VNNI && x.HasF16C
}

func fastFamilies() []kernels {
	var f []kernels
	if hasAVX512VNNI() {
		f = append(f, avx512VNNI)
	}
	return f
}

// tiles walks the output in tiles of up to 4×4. For one activation row (decoding) it streams each weight row once.
// For many rows (prompts) it takes the activations in blocks of about 128 KiB, which stay in L2 while every weight
// tile of the range passes over them, and each weight tile stays in L1 while the block's rows pass over it.
func tiles(tab *[tileRows][tileRows]tileFunc, blockBytes int, w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
	nb := k / QK
	wr, ar := nb*blockBytes, nb*34
	mb := max(tileRows, (128<<10)/ar/tileRows*tileRows)
	for i0 := 0; i0 < m; i0 += mb {
		i1 := min(m, i0+mb)
		for j := n0; j < n1; j += tileRows {
			rn := min(tileRows, n1-j)
			for i := i0; i < i1; i += tileRows {
				rm := min(tileRows, i1-i)
				tab[rm-1][rn-1](&w[j*wr], wr, &a[i*ar], ar, nb, &dst[i*n+j], n)
			}
		}
	}
}

func matMulFAVX512(wt tensor.DType, w []byte, k int, x []float32, m int, dst []float32, n, n0, n1 int) {
	steps := k / 16
	if steps == 0 {
		matMulFGeneric(wt, w, k, x, m, dst, n, n0, n1)
		return
	}
	tab := &f32Tiles
	switch wt {
	case tensor.F16:
		tab = &f16Tiles
	case tensor.BF16:
		tab = &bf16Tiles
	}
	wr := wt.RowBytes(k)
	for j := n0; j < n1; j += tileRows {
		rn := min(tileRows, n1-j)
		for i := 0; i < m; i += tileRows {
			rm := min(tileRows, m-i)
			tab[rm-1][rn-1](&w[j*wr], wr, (*byte)(unsafe.Pointer(&x[i*k])), 4*k, steps, &dst[i*n+j], n)
		}
	}
	if tail := steps * 16; tail < k {
		for i := 0; i < m; i++ {
			xs := x[i*k : i*k+k]
			for j := n0; j < n1; j++ {
				dst[i*n+j] += dotFTail(wt, w[j*wr:j*wr+wr], xs, tail)
			}
		}
	}
}
