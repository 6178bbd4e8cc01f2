package amx

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"

	"golang.org/x/sys/cpu"

	"tilelab/engine/tensor"
)

// The layouts of repacked weights.
const (
	LayoutInt8 tensor.Layout = "amx-int8" // Q8_0 and Q4_0 weights as int8 VNNI panels with per-group scales
	LayoutBF16 tensor.Layout = "amx-bf16" // F16 and BF16 weights as bf16 pair panels
)

func roundUp(n, m int) int { return (n + m - 1) / m * m }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// effectiveGroup is the group a K of kp (a multiple of 64) can use for the asked one: 32 as is, 0 as the whole
// K, otherwise the largest common divisor, so every group is whole.
func effectiveGroup(group, kp int) int {
	switch {
	case group == 32:
		return 32
	case group <= 0 || group >= kp:
		return kp
	}
	return gcd(group, kp)
}

// packedInt8 is a Q8_0 or Q4_0 weight of E experts x N rows x K in the amx-int8 layout.
type packedInt8 struct {
	Src           tensor.DType
	E, N, K       int
	Np, Kp        int // N padded to 64, K padded to 64
	Group, Groups int // K values per scale group and groups per row (Kp/Group)
	Q             []byte
	WS            []float32 // [E][Np/16][Groups][16]
	WSum          []int32   // same shape: sum of the group's int8 values, for the VNNI path
}

// qIndex is the byte offset of weight (e, n, k).
func (p *packedInt8) qIndex(e, n, k int) int {
	return e*p.Np*p.Kp + n/16*16*p.Kp + k/4*64 + n%16*4 + k%4
}

// sIndex is the offset of the scale (and weight sum) of (e, n, group g).
func (p *packedInt8) sIndex(e, n, g int) int {
	return (e*p.Np/16+n/16)*p.Groups*16 + g*16 + n%16
}

// packedBF16 is an F16 or BF16 weight of E experts x N rows x K in the amx-bf16 layout.
type packedBF16 struct {
	Src     tensor.DType
	E, N, K int
	Np, Kp  int    // N padded to 64, K padded to 32
	B       []byte // little-endian bf16
}

// bIndex is the byte offset of weight (e, n, k).
func (p *packedBF16) bIndex(e, n, k int) int {
	return 2 * (e*p.Np*p.Kp + n/16*16*p.Kp + k/2*32 + n%16*2 + k%2)
}

func int8Sizes(n, k, e, group int) (np, kp, g, groups int, bytes int64) {
	np, kp = roundUp(n, 64), roundUp(k, 64)
	g = effectiveGroup(group, kp)
	groups = kp / g
	bytes = int64(e) * (int64(np)*int64(kp) + 8*int64(np)*int64(groups))
	return
}

func bf16Sizes(n, k, e int) (np, kp int, bytes int64) {
	np, kp = roundUp(n, 64), roundUp(k, 32)
	return np, kp, int64(e) * int64(np) * int64(kp) * 2
}

// blockInt8 decodes one Q8_0 or Q4_0 block into its 32 int8 values and scale.
func blockInt8(t tensor.DType, b []byte, q *[32]int8) float32 {
	d := tensor.F16ToF32(binary.LittleEndian.Uint16(b))
	switch t {
	case tensor.Q8_0:
		for i := 0; i < 32; i++ {
			q[i] = int8(b[2+i])
		}
	case tensor.Q4_0:
		for i := 0; i < 16; i++ {
			q[i] = int8(b[2+i]&0x0f) - 8
			q[i+16] = int8(b[2+i]>>4) - 8
		}
	}
	return d
}

// packInt8 repacks E x N rows of a Q8_0 or Q4_0 weight (plain ggml bytes) into the amx-int8 layout.
func packInt8(t tensor.DType, data []byte, n, k, e, group int) (*packedInt8, error) {
	if t != tensor.Q8_0 && t != tensor.Q4_0 {
		return nil, fmt.Errorf("amx-int8 packs q8_0 and q4_0, not %s", t)
	}
	if k%32 != 0 {
		return nil, fmt.Errorf("row length %d is not a multiple of the %s block (32)", k, t)
	}
	rowBytes := t.RowBytes(k)
	if len(data) != rowBytes*n*e {
		return nil, fmt.Errorf("%s data is %d bytes, want %d for %d x %d x %d", t, len(data), rowBytes*n*e, k, n, e)
	}
	np, kp, g, groups, _ := int8Sizes(n, k, e, group)
	p := &packedInt8{Src: t, E: e, N: n, K: k, Np: np, Kp: kp, Group: g, Groups: groups,
		Q: make([]byte, e*np*kp), WS: make([]float32, e*np*groups), WSum: make([]int32, e*np*groups)}
	bb := t.BlockBytes()
	parallelRows(e*n, func(lo, hi int) {
		var q [32]int8
		qs := make([]int8, kp)       // the row's int8 values, zero past k
		ds := make([]float32, kp/32) // each block's scale, zero past k
		mx := make([]float32, kp/32) // each block's largest magnitude: |scale| times its largest |value|
		for i := lo; i < hi; i++ {
			ex, r := i/n, i%n
			row := data[i*rowBytes:]
			clear(qs)
			clear(ds)
			clear(mx)
			for b := 0; b < k/32; b++ {
				d := blockInt8(t, row[b*bb:], &q)
				m := 0
				for _, v := range q {
					m = max(m, abs(int(v)))
				}
				ds[b], mx[b] = d, float32(math.Abs(float64(d)))*float32(m)
				copy(qs[b*32:], q[:])
			}
			for gi := 0; gi < groups; gi++ {
				g0, g1 := gi*g, (gi+1)*g
				var scale float32
				if g == 32 {
					scale = ds[gi]
				} else {
					// Requantize the group to one scale: the largest magnitude maps to 127. |d·q| is |d|·|q| in
					// float32 too, and rounding keeps order, so the block maxima give the group's exactly.
					var amax float32
					for b := g0 / 32; b < g1/32; b++ {
						amax = max(amax, mx[b])
					}
					scale = amax / 127
					switch {
					case scale == 0:
						clear(qs[g0:g1])
					case t == tensor.Q4_0:
						// A Q4_0 block holds 16 distinct values: requantize those, then look each element up.
						var lut [16]int8
						for b := g0 / 32; b < g1/32; b++ {
							for v := range lut {
								lut[v] = int8(math.Round(float64(ds[b] * float32(v-8) / scale)))
							}
							for j := b * 32; j < b*32+32; j++ {
								qs[j] = lut[qs[j]+8]
							}
						}
					default:
						for j := g0; j < g1; j++ {
							qs[j] = int8(math.Round(float64(ds[j/32] * float32(qs[j]) / scale)))
						}
					}
				}
				var sum int32
				for _, v := range qs[g0:g1] {
					sum += int32(v)
				}
				p.WS[p.sIndex(ex, r, gi)] = scale
				p.WSum[p.sIndex(ex, r, gi)] = sum
			}
			// Into the tile layout: four K values of the row together, each next four one 64-byte tile row on.
			dst := p.Q[p.qIndex(ex, r, 0):]
			for kk := 0; kk < kp; kk += 4 {
				o := kk / 4 * 64
				dst[o], dst[o+1], dst[o+2], dst[o+3] = byte(qs[kk]), byte(qs[kk+1]), byte(qs[kk+2]), byte(qs[kk+3])
			}
		}
	})
	return p, nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// packBF16 repacks E x N rows of an F16 or BF16 weight into the amx-bf16 layout.
func packBF16(t tensor.DType, data []byte, n, k, e int) (*packedBF16, error) {
	if t != tensor.F16 && t != tensor.BF16 {
		return nil, fmt.Errorf("amx-bf16 packs f16 and bf16, not %s", t)
	}
	if len(data) != 2*k*n*e {
		return nil, fmt.Errorf("%s data is %d bytes, want %d for %d x %d x %d", t, len(data), 2*k*n*e, k, n, e)
	}
	np, kp, _ := bf16Sizes(n, k, e)
	p := &packedBF16{Src: t, E: e, N: n, K: k, Np: np, Kp: kp, B: make([]byte, 2*e*np*kp)}
	parallelRows(e*n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ex, r := i/n, i%n
			src := data[2*i*k : 2*(i+1)*k]
			// Into the tile layout: two K values of the row together, each next pair one 64-byte tile row on.
			dst := p.B[p.bIndex(ex, r, 0):]
			for j := 0; j < k; j++ {
				h := binary.LittleEndian.Uint16(src[2*j:])
				if t == tensor.F16 {
					h = tensor.F32ToBF16(tensor.F16ToF32(h))
				}
				binary.LittleEndian.PutUint16(dst[j/2*64+j%2*2:], h)
			}
		}
	})
	return p, nil
}

// quantAsm says whether activations are quantized and converted with AVX-512.
var quantAsm = haveQuantAsm && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasOSXSAVE

// parallelRows splits [0, rows) over the CPUs; repacking a large model at load is otherwise minutes of one core.
func parallelRows(rows int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), max(1, rows/64))
	var wg sync.WaitGroup
	per := (rows + workers - 1) / workers
	for lo := 0; lo < rows; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, min(rows, lo+per))
	}
	wg.Wait()
}

// actInt8 holds activations quantized to int8 for the tile kernels: rows padded to the block, K padded like the
// weights, one float32 scale per row and group.
type actInt8 struct {
	Rows, Kp, Group, Groups int
	Q                       []byte    // [Rows][Kp] int8 (or uint8 = int8+128 for the VNNI path)
	XS                      []float32 // [Groups][Rows]
}

func (a *actInt8) reset(rows, kp, group int) {
	a.Rows, a.Kp, a.Group, a.Groups = rows, kp, group, kp/group
	if n := rows * kp; cap(a.Q) < n {
		a.Q = make([]byte, n)
	} else {
		a.Q = a.Q[:n]
	}
	if n := rows * a.Groups; cap(a.XS) < n {
		a.XS = make([]float32, n)
	} else {
		a.XS = a.XS[:n]
	}
}

// quantizeRow quantizes x (len <= Kp) into row r, row-major: per group, the largest magnitude maps to 127. With
// unsigned set, values are stored offset by 128 (the VNNI path's unsigned operand).
func (a *actInt8) quantizeRow(r int, x []float32, unsigned bool) {
	a.quantizeInto(a.Q[r*a.Kp:(r+1)*a.Kp], r, x, unsigned, a.Kp, 0, nil)
}

// quantizeTileRow quantizes x as row rel of the set whose rows start at row base, in tile order: the set's rows
// in bands of tileRows, each band K step by K step, so a tile load reads one contiguous run (stride kstep).
// tmp is Kp bytes of scratch for the Go path.
func (a *actInt8) quantizeTileRow(base, rel, tileRows, kstep int, x []float32, tmp []byte) {
	band := a.Q[(base+rel/tileRows*tileRows)*a.Kp:][:tileRows*a.Kp]
	a.quantizeInto(band[rel%tileRows*kstep:], base+rel, x, false, kstep, (tileRows-1)*kstep, tmp)
}

// quantizeInto quantizes x and stores the scales of row r, writing the bytes to q in runs of chunk bytes
// separated by gaps of jump bytes (row-major: chunk = Kp, jump = 0). It runs in AVX-512 where the CPU has it,
// else in Go with the same arithmetic (scale = max|x| / 127 in float32, values x·(1/scale) rounded to nearest
// even and saturated), so both give the same bytes for finite x. A NaN in x is not carried the same way: the Go
// path's scale becomes NaN (so the outputs of that row and group do), while the AVX-512 maximum may drop it and
// quantize the NaN to -128, a finite value (CPU mode loses it too: a NaN activation gives finite q8_0 outputs
// there). tmp (Kp bytes) is needed by the Go path when jump > 0.
func (a *actInt8) quantizeInto(q []byte, r int, x []float32, unsigned bool, chunk, jump int, tmp []byte) {
	var off byte
	if unsigned {
		off = 0x80
	}
	if last := (a.Kp/chunk-1)*(chunk+jump) + chunk; len(q) < last {
		panic(fmt.Sprintf("amx: quantized row needs %d bytes, has %d", last, len(q)))
	}
	if quantAsm && len(x) > 0 && a.Group%16 == 0 && chunk%16 == 0 { // the assembly works in runs of 16
		if len(x) != a.Kp {
			padded := make([]float32, a.Kp)
			copy(padded, x)
			x = padded
		}
		quantRowAVX512(&x[0], &q[0], &a.XS[r], uintptr(4*a.Rows), uintptr(a.Groups), uintptr(a.Group), uint32(off),
			uintptr(chunk), uintptr(jump))
		return
	}
	out := q
	if jump != 0 {
		out = tmp[:a.Kp]
	}
	for g := 0; g < a.Groups; g++ {
		lo, hi := g*a.Group, min((g+1)*a.Group, len(x))
		var amax float32
		for j := lo; j < hi; j++ {
			amax = max(amax, float32(math.Abs(float64(x[j]))))
		}
		s := amax / 127
		a.XS[g*a.Rows+r] = s
		var inv float32
		if s != 0 {
			inv = 1 / s
		}
		for j := lo; j < (g+1)*a.Group; j++ {
			var v float64
			if j < hi {
				v = math.RoundToEven(float64(float32(x[j] * inv)))
			}
			out[j] = byte(int8(max(-128, min(127, v)))) ^ off
		}
	}
	if jump != 0 {
		for c := 0; c < a.Kp/chunk; c++ {
			copy(q[c*(chunk+jump):][:chunk], out[c*chunk:(c+1)*chunk])
		}
	}
}

// actBF16 holds activations as bf16 rows for the tile kernels, or as float32 rows for the AVX-512 path.
type actBF16 struct {
	Rows, Kp int
	B        []byte    // [Rows][Kp] bf16
	F        []float32 // [Rows][Kp] float32 (AVX-512 path)
}

// reset sizes the buffers for rows rows of Kp values: the bf16 rows if tiles will read them, the float32 rows
// if the AVX-512 path will (wide); a buffer not needed keeps its storage but is not grown.
func (a *actBF16) reset(rows, kp int, tiles, wide bool) {
	a.Rows, a.Kp = rows, kp
	if n := rows * kp; !wide {
		a.F = a.F[:0]
	} else if cap(a.F) < n {
		a.F = make([]float32, n)
	} else {
		a.F = a.F[:n]
	}
	if n := 2 * rows * kp; !tiles {
		a.B = a.B[:0]
	} else if cap(a.B) < n {
		a.B = make([]byte, n)
	} else {
		a.B = a.B[:n]
	}
}

func (a *actBF16) setRow(r int, x []float32, wide bool) {
	if wide {
		row := a.F[r*a.Kp : (r+1)*a.Kp]
		n := copy(row, x)
		clear(row[n:])
		return
	}
	a.bf16Into(a.B[2*r*a.Kp:2*(r+1)*a.Kp], x, 2*a.Kp, 0, nil)
}

// setTileRow stores x as bf16 row rel of the set starting at row base, in tile order (see quantizeTileRow);
// tmp is 2*Kp bytes of scratch for the Go path.
func (a *actBF16) setTileRow(base, rel, tileRows, kstep int, x []float32, tmp []byte) {
	band := a.B[2*(base+rel/tileRows*tileRows)*a.Kp:][:2*tileRows*a.Kp]
	a.bf16Into(band[rel%tileRows*kstep:], x, kstep, (tileRows-1)*kstep, tmp)
}

// bf16Into rounds x (zero-padded to Kp) to bf16 and writes it in runs of chunk bytes separated by jump bytes.
func (a *actBF16) bf16Into(q []byte, x []float32, chunk, jump int, tmp []byte) {
	if last := (2*a.Kp/chunk-1)*(chunk+jump) + chunk; len(q) < last {
		panic(fmt.Sprintf("amx: bf16 row needs %d bytes, has %d", last, len(q)))
	}
	if quantAsm && len(x) == a.Kp && a.Kp%16 == 0 && chunk%32 == 0 {
		bf16RowAVX512(&x[0], &q[0], uintptr(a.Kp), uintptr(chunk), uintptr(jump))
		return
	}
	out := q
	if jump != 0 {
		out = tmp[:2*a.Kp]
	}
	for j := 0; j < a.Kp; j++ {
		var h uint16
		if j < len(x) {
			h = tensor.F32ToBF16(x[j])
		}
		binary.LittleEndian.PutUint16(out[2*j:], h)
	}
	if jump != 0 {
		for c := 0; c < 2*a.Kp/chunk; c++ {
			copy(q[c*(chunk+jump):][:chunk], out[c*chunk:(c+1)*chunk])
		}
	}
}
