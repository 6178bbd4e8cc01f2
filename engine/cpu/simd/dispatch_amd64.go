package simd

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"tilelab/engine/tensor"
)

// tileFunc computes a tile of dst (rows of a × rows of w) over the whole k: dst[i*ds + j] for the tile's i and j.
// Strides ws and as are in bytes, ds in elements; nb counts blocks (quantized) or vector steps (float).
type tileFunc func(w *byte, ws int, a *byte, as int, nb int, dst *float32, ds int)

// tileSet is one instruction set's generated tiles, indexed [activation rows-1][weight rows-1].
type tileSet struct {
	q4, q8, f32, f16, bf16 *[4][4]tileFunc
	// prep says whether many-row Q4_0 and Q8_0 products use the prepared-activation tiles (AVX-512 only).
	prep bool
	edge int // the largest tile edge generated
	step int // float elements per vector step
}

// q4VNNIMixed is the Q4_0 set in use: 256-bit tiles for one activation row (streaming weights, where a third issue
// port beats wider registers), 512-bit tiles for several.
var q4VNNIMixed = func() [4][4]tileFunc {
	t := q4VNNITiles
	t[0] = q4VNNIYTiles[0]
	return t
}()

var (
	avx512Tiles = tileSet{q4: &q4VNNIMixed, q8: &q8VNNITiles, f32: &f32Tiles, f16: &f16Tiles, bf16: &bf16Tiles,
		edge: 4, step: 16}
	avx2Tiles = tileSet{q4: &q4AVX2Tiles, q8: &q8AVX2Tiles, f32: &f32AVX2Tiles, f16: &f16AVX2Tiles, bf16: &bf16AVX2Tiles,
		edge: 2, step: 8}
)

func (ts tileSet) family(name string) kernels {
	return kernels{
		name: name,
		mmQ4: func(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
			if m == 1 || !ts.prep || !prepTiles(false, w, k, a, m, dst, n, n0, n1) {
				tiles(ts.q4, ts.edge, 18, w, k, a, m, dst, n, n0, n1)
			}
		},
		mmQ8: func(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
			if m == 1 || !ts.prep || !prepTiles(true, w, k, a, m, dst, n, n0, n1) {
				tiles(ts.q8, ts.edge, 34, w, k, a, m, dst, n, n0, n1)
			}
		},
		mmF: func(wt tensor.DType, w []byte, k, ws int, x []float32, m int, dst []float32, n, n0, n1 int) {
			tab := ts.f32
			switch wt {
			case tensor.F16:
				tab = ts.f16
			case tensor.BF16:
				tab = ts.bf16
			}
			floatTiles(tab, ts.edge, ts.step, wt, w, k, ws, x, m, dst, n, n0, n1)
		},
		quant:   quantizeQ8Generic,
		softmax: softmaxGeneric,
		swiglu:  swigluGeneric,
	}
}

var (
	avx512VNNI = func() kernels {
		k := avx512Tiles.family("avx512-vnni")
		k.quant, k.softmax, k.swiglu = quantizeQ8AVX512, softmaxAVX512, swigluAVX512Slices
		return k
	}()
	avx2 = avx2Tiles.family("avx2")
	// avx512Prep prepares each tile of activation rows once for many-row products: fewer instructions, but
	// measured slower on the device (pp512 1199 against 1460 tok/s), so it is kept for comparison only.
	avx512Prep = avx512Variant("avx512-vnni-prep", func(ts *tileSet) { ts.prep = true })
	// avx512ZMM runs single-row Q4_0 products in 512-bit registers like the other tiles: slower on the device
	// (one thread 3.4-4.1 against 6.1 GB/s, 16 threads 70 against 78 GB/s, tg128 140 against 148 tok/s).
	avx512ZMM = avx512Variant("avx512-vnni-zmm", func(ts *tileSet) { ts.q4 = &q4VNNITiles })
	// avx512Cvt widens the single-row Q4_0 tiles' weight scales with VCVTPH2PS instead of looking them up in
	// halfTable, whose 256 KiB the streamed weights keep evicting: for comparison on the device.
	avx512Cvt = avx512Variant("avx512-vnni-cvt", func(ts *tileSet) { ts.q4 = &q4VNNICvtMixed })
)

// avx512RowPF prefetches 1 KiB ahead within each weight row in single-row products, as the kernels did before
// they prefetched the next tile: kept to measure that choice on other machines.
var avx512RowPF = avx512Variant("avx512-vnni-rowpf", func(ts *tileSet) {
	q4, q8 := q4VNNITiles, q8VNNITiles
	q4[0], q8[0] = q4VNNIYRTiles[0], q8VNNIRTiles[0]
	ts.q4, ts.q8 = &q4, &q8
})

// q4VNNICvtMixed is q4VNNIMixed with the single-row tiles that convert their scales.
var q4VNNICvtMixed = func() [4][4]tileFunc {
	t := q4VNNITiles
	t[0] = q4VNNIYCTiles[0]
	return t
}()

// avx512Variant is the AVX-512 family with its tile set changed by edit.
func avx512Variant(name string, edit func(*tileSet)) kernels {
	ts := avx512Tiles
	edit(&ts)
	k := ts.family(name)
	k.quant, k.softmax, k.swiglu = quantizeQ8AVX512, softmaxAVX512, swigluAVX512Slices
	return k
}

func init() {
	switch {
	case hasAVX512VNNI():
		impl = avx512VNNI
	case hasAVX2():
		impl = avx2
	}
	chooseFromEnv()
}

// hasAVX512VNNI also requires the OS to save the upper ZMM state, which x/sys/cpu folds into HasAVX512.
func hasAVX512VNNI() bool {
	x := cpu.X86
	return x.HasAVX512 && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512VNNI && x.HasF16C
}

// hasAVX2 covers the AVX2 family's needs: AVX2, FMA and F16C (x/sys/cpu checks the OS's YMM support for HasAVX).
func hasAVX2() bool {
	x := cpu.X86
	return x.HasAVX && x.HasAVX2 && x.HasFMA && x.HasF16C
}

func fastFamilies() []kernels {
	var f []kernels
	if hasAVX512VNNI() {
		f = append(f, avx512VNNI, avx512Prep, avx512ZMM, avx512Cvt, avx512RowPF)
	}
	if hasAVX2() {
		f = append(f, avx2)
	}
	return f
}

// tiles walks the output in tiles of up to edge×edge. For one activation row (decoding) it streams each weight row
// once. For many rows (prompts) it takes the activations in blocks of about 128 KiB, which stay in L2 while every
// weight tile of the range passes over them, and each weight tile stays in L1 while the block's rows pass over it.
func tiles(tab *[4][4]tileFunc, edge, blockBytes int, w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
	nb := k / QK
	wr, ar := nb*blockBytes, nb*34
	mb := max(edge, (128<<10)/ar/edge*edge)
	for i0 := 0; i0 < m; i0 += mb {
		i1 := min(m, i0+mb)
		for j := n0; j < n1; j += edge {
			rn := min(edge, n1-j)
			for i := i0; i < i1; i += edge {
				rm := min(edge, i1-i)
				tab[rm-1][rn-1](&w[j*wr], wr, &a[i*ar], ar, nb, &dst[i*n+j], n)
			}
		}
	}
}

// prepTiles is the many-row path: for each tile of up to 4 activation rows it prepares the rows once (layout,
// scales, offset sums), then runs every weight tile of an L2-sized block of weight rows over them. The prepared rows
// live in a stack buffer, so nothing is allocated; it reports false, doing nothing, when k is too large for it.
func prepTiles(q8 bool, w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) bool {
	ps := (k/QK + 1) / 2 * prepBytes
	switch {
	case 4*ps <= 16<<10:
		var buf [16 << 10]byte
		prepTilesBuf(&buf[0], q8, w, k, a, m, dst, n, n0, n1)
	case 4*ps <= 64<<10:
		var buf [64 << 10]byte
		prepTilesBuf(&buf[0], q8, w, k, a, m, dst, n, n0, n1)
	default:
		return false
	}
	return true
}

func prepTilesBuf(buf *byte, q8 bool, w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
	nb := k / QK
	ps := (nb + 1) / 2 * prepBytes
	blockBytes := 18
	if q8 {
		blockBytes = 34
	}
	wr, ar := nb*blockBytes, nb*34
	jb := max(4, (256<<10)/wr/4*4)
	for j0 := n0; j0 < n1; j0 += jb {
		j1 := min(n1, j0+jb)
		for i := 0; i < m; i += 4 {
			rm := min(4, m-i)
			if q8 {
				q8Prep(&a[i*ar], ar, rm, nb, buf, ps)
			} else {
				q4Prep(&a[i*ar], ar, rm, nb, buf, ps)
			}
			for j := j0; j < j1; j += 4 {
				rn := min(4, j1-j)
				if q8 {
					q8PrepTile(rm, rn, &w[j*wr], wr, buf, ps, nb, &dst[i*n+j], n)
				} else {
					q4PrepTile(rm, rn, &w[j*wr], wr, buf, ps, nb, &dst[i*n+j], n)
				}
			}
		}
	}
}

// floatTiles runs the float tiles over the whole vector steps of k and finishes the last k%step elements in Go.
func floatTiles(tab *[4][4]tileFunc, edge, step int, wt tensor.DType, w []byte, k, wr int, x []float32, m int, dst []float32, n, n0, n1 int) {
	steps := k / step
	if steps == 0 {
		matMulFGeneric(wt, w, k, wr, x, m, dst, n, n0, n1)
		return
	}
	rb := wt.RowBytes(k)
	for j := n0; j < n1; j += edge {
		rn := min(edge, n1-j)
		for i := 0; i < m; i += edge {
			rm := min(edge, m-i)
			tab[rm-1][rn-1](&w[j*wr], wr, (*byte)(unsafe.Pointer(&x[i*k])), 4*k, steps, &dst[i*n+j], n)
		}
	}
	if tail := steps * step; tail < k {
		for i := 0; i < m; i++ {
			xs := x[i*k : i*k+k]
			for j := n0; j < n1; j++ {
				dst[i*n+j] += dotFTail(wt, w[j*wr:j*wr+rb], xs, tail)
			}
		}
	}
}
