package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"tilelab/engine/tensor"
)

func TestHalfConversion(t *testing.T) {
	t.Run("every half survives a round trip through float32", func(t *testing.T) {
		for h := 0; h < 1<<16; h++ {
			f := halfToFloat(uint16(h))
			if f != f {
				continue // NaN payloads are not preserved bit for bit
			}
			if back := floatToHalf(f); back != uint16(h) {
				t.Fatalf("half %#04x → %v → %#04x", h, f, back)
			}
		}
	})
	cases := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{1 + 1.0/2048, 0x3c00},    // a tie rounds to the even mantissa
		{1 + 3.0/2048, 0x3c02},    // a tie rounds up to the even mantissa
		{1.0 / (1 << 24), 0x0001}, // the smallest subnormal
		{1.0 / (1 << 25), 0x0000}, // half of it ties to even zero
		{3.0 / (1 << 25), 0x0002},
		{6.102e-5, 0x0400}, // rounds up from the largest subnormal into the normals
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%g narrows to %#04x", c.f, c.want), func(t *testing.T) {
			if got := floatToHalf(c.f); got != c.want {
				t.Errorf("floatToHalf(%g) = %#04x", c.f, got)
			}
		})
	}
}

func TestQuantizeQ8_0(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{32, 96, 4096 + 32} {
		t.Run(fmt.Sprintf("%d values follow ggml's reference rounding", n), func(t *testing.T) {
			x := randFloats(r, n)
			x[5] = 0 // a zero inside a block must stay zero
			dst := make([]byte, n/32*34)
			if err := QuantizeQ8_0(dst, x); err != nil {
				t.Fatal(err)
			}
			ref := make([]byte, len(dst))
			quantizeQ8Generic(ref, x)
			for b := 0; b < n/32; b++ {
				var amax float64
				for _, v := range x[b*32 : b*32+32] {
					amax = math.Max(amax, math.Abs(float64(v)))
				}
				if d := le16(dst[b*34:]); d != floatToHalf(float32(amax)/127) {
					t.Fatalf("block %d scale %#04x, want fp16(%g/127)", b, d, amax)
				}
				for l := 0; l < 32; l++ {
					if dst[b*34+2+l] != ref[b*34+2+l] {
						t.Fatalf("block %d value %d: %d, reference %d", b, l, int8(dst[b*34+2+l]), int8(ref[b*34+2+l]))
					}
				}
			}
			back := dequant(tensor.Q8_0, dst, n)
			for i, v := range x {
				d := float64(halfToFloat(le16(dst[i/32*34:])))
				if math.Abs(back[i]-float64(v)) > d*0.5+math.Abs(float64(v))*1e-3 {
					t.Fatalf("value %d: %g came back as %g (scale %g)", i, v, back[i], d)
				}
			}
		})
	}
	t.Run("a block of all zeros gets scale zero", func(t *testing.T) {
		dst := make([]byte, 34)
		if err := QuantizeQ8_0(dst, make([]float32, 32)); err != nil {
			t.Fatal(err)
		}
		for i, b := range dst {
			if b != 0 {
				t.Fatalf("byte %d is %d", i, b)
			}
		}
	})
	t.Run("a length that is not whole blocks is refused", func(t *testing.T) {
		err := QuantizeQ8_0(make([]byte, 68), make([]float32, 40))
		if err == nil || !strings.Contains(err.Error(), "multiple of the block size") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a short destination is refused", func(t *testing.T) {
		err := QuantizeQ8_0(make([]byte, 33), make([]float32, 32))
		if err == nil || !strings.Contains(err.Error(), "dst holds 33 bytes") {
			t.Fatalf("err = %v", err)
		}
	})
}

// mmCase is one shape for the matrix-product tests: ragged on purpose (odd m and n, partial column ranges).
type mmCase struct{ k, m, n, n0, n1 int }

var mmCases = []mmCase{
	{32, 1, 1, 0, 1},
	{64, 1, 7, 0, 7},
	{96, 1, 9, 2, 9},
	{160, 3, 5, 1, 4},
	{256, 5, 13, 3, 12},
	{2048, 1, 17, 0, 17},
	{416, 7, 11, 0, 11},
	{1024, 9, 6, 1, 6},
	{64, 17, 4, 0, 4},
}

func (c mmCase) String() string {
	return fmt.Sprintf("k=%d m=%d n=%d columns [%d,%d)", c.k, c.m, c.n, c.n0, c.n1)
}

// runMatMul computes a case with the current kernels, the generic kernels and a float64 dequantized reference.
func checkMatMul(t testing.TB, wt tensor.DType, c mmCase, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, uint64(c.k)))
	w := randWeights(r, wt, c.n, c.k)
	x := randFloats(r, c.m*c.k)
	a := make([]byte, c.m*c.k/32*34)
	if err := QuantizeQ8_0(a, x); err != nil {
		t.Fatal(err)
	}
	const sentinel = -12345
	got := make([]float32, c.m*c.n)
	for i := range got {
		got[i] = sentinel
	}
	if err := MatMul(wt, w, c.k, a, c.m, got, c.n, c.n0, c.n1); err != nil {
		t.Fatal(err)
	}
	rb := wt.RowBytes(c.k)
	for i := 0; i < c.m; i++ {
		ai := dequant(tensor.Q8_0, a[i*c.k/32*34:], c.k)
		for j := 0; j < c.n; j++ {
			g := got[i*c.n+j]
			if j < c.n0 || j >= c.n1 {
				if g != sentinel {
					t.Fatalf("%v: dst[%d][%d] outside the column range was written", c, i, j)
				}
				continue
			}
			wj := dequant(wt, w[j*rb:], c.k)
			var want, abs float64
			for e := range wj {
				want += wj[e] * ai[e]
				abs += math.Abs(wj[e] * ai[e])
			}
			if !closeTo(g, want, abs, c.k/32) {
				t.Fatalf("%v (%s): dst[%d][%d] = %g, want %g (Σ|terms| %g)", c, Variant(), i, j, g, want, abs)
			}
		}
	}
}

func TestMatMul(t *testing.T) {
	for _, wt := range []tensor.DType{tensor.Q4_0, tensor.Q8_0} {
		for _, fam := range families() {
			for _, c := range mmCases {
				t.Run(fmt.Sprintf("%s kernels give the dequantized product for %v weights at %v", fam.name, wt, c), func(t *testing.T) {
					defer use(fam)()
					checkMatMul(t, wt, c, 7)
				})
			}
		}
	}
}

func checkMatMulF(t testing.TB, wt tensor.DType, c mmCase, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, uint64(c.k)))
	w := randWeights(r, wt, c.n, c.k)
	x := randFloats(r, c.m*c.k)
	const sentinel = -12345
	got := make([]float32, c.m*c.n)
	for i := range got {
		got[i] = sentinel
	}
	if err := MatMulF(wt, w, c.k, x, c.m, got, c.n, c.n0, c.n1); err != nil {
		t.Fatal(err)
	}
	rb := wt.RowBytes(c.k)
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			g := got[i*c.n+j]
			if j < c.n0 || j >= c.n1 {
				if g != sentinel {
					t.Fatalf("%v: dst[%d][%d] outside the column range was written", c, i, j)
				}
				continue
			}
			wj := dequant(wt, w[j*rb:], c.k)
			var want, abs float64
			for e := range wj {
				p := wj[e] * float64(x[i*c.k+e])
				want += p
				abs += math.Abs(p)
			}
			if !closeTo(g, want, abs, c.k) {
				t.Fatalf("%v (%s): dst[%d][%d] = %g, want %g", c, Variant(), i, j, g, want)
			}
		}
	}
}

var mmFCases = append([]mmCase{{1, 1, 1, 0, 1}, {15, 2, 3, 0, 3}, {17, 3, 5, 1, 5}, {100, 5, 9, 2, 7}}, mmCases...)

func TestMatMulF(t *testing.T) {
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		for _, fam := range families() {
			for _, c := range mmFCases {
				t.Run(fmt.Sprintf("%s kernels give the float product for %v weights at %v", fam.name, wt, c), func(t *testing.T) {
					defer use(fam)()
					checkMatMulF(t, wt, c, 11)
				})
			}
		}
	}
}

func TestMatMulRefusesBadInput(t *testing.T) {
	w := make([]byte, 4*18)
	a := make([]byte, 2*34)
	dst := make([]float32, 8)
	cases := []struct {
		name, want string
		call       func() error
	}{
		{"an unsupported weight type", "weight type q4_k is not supported", func() error {
			return MatMul(tensor.Q4_K, w, 32, a, 2, dst, 4, 0, 4)
		}},
		{"k that is not whole blocks", "k=48 is not a multiple", func() error {
			return MatMul(tensor.Q4_0, w, 48, a, 1, dst, 4, 0, 4)
		}},
		{"too few weight bytes", "weights hold 72 bytes", func() error {
			return MatMul(tensor.Q4_0, w, 32, a, 1, dst, 5, 0, 5)
		}},
		{"too few activation bytes", "activations hold 68 bytes", func() error {
			return MatMul(tensor.Q4_0, w, 32, a, 3, make([]float32, 12), 4, 0, 4)
		}},
		{"a column range past n", "column range [2,5)", func() error {
			return MatMul(tensor.Q4_0, w, 32, a, 1, dst, 4, 2, 5)
		}},
		{"a reversed column range", "column range [3,2)", func() error {
			return MatMul(tensor.Q4_0, w, 32, a, 1, dst, 4, 3, 2)
		}},
		{"a short dst", "dst holds 8 values", func() error {
			return MatMul(tensor.Q4_0, w, 32, a, 2, dst, 5, 0, 1)
		}},
		{"float weights given to MatMul", "weight type f16 is not supported", func() error {
			return MatMul(tensor.F16, w, 32, a, 1, dst, 4, 0, 4)
		}},
		{"quantized weights given to MatMulF", "weight type q8_0 is not supported", func() error {
			return MatMulF(tensor.Q8_0, w, 32, nil, 1, dst, 4, 0, 4)
		}},
		{"too few float activations", "activations hold 3 values", func() error {
			return MatMulF(tensor.F32, make([]byte, 64), 4, make([]float32, 3), 1, dst, 4, 0, 4)
		}},
		{"zero k", "k=0 must be positive", func() error {
			return MatMulF(tensor.F32, nil, 0, nil, 1, dst, 4, 0, 4)
		}},
	}
	for _, c := range cases {
		t.Run("MatMul refuses "+c.name, func(t *testing.T) {
			err := c.call()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func FuzzMatMulParity(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), uint8(0), uint8(1), uint64(1), false)
	f.Add(uint8(7), uint8(5), uint8(13), uint8(3), uint8(12), uint64(2), true)
	f.Add(uint8(64), uint8(9), uint8(8), uint8(0), uint8(8), uint64(3), false)
	f.Fuzz(func(t *testing.T, kb, m, n, n0, n1 uint8, seed uint64, q8 bool) {
		c := mmCase{k: int(kb%80+1) * 32, m: int(m%20) + 1, n: int(n%24) + 1}
		c.n0, c.n1 = int(n0)%c.n, int(n1)%(c.n+1)
		if c.n0 > c.n1 {
			c.n0, c.n1 = c.n1, c.n0
		}
		wt := tensor.Q4_0
		if q8 {
			wt = tensor.Q8_0
		}
		checkParity(t, wt, c, seed)
	})
}

func FuzzMatMulFParity(f *testing.F) {
	f.Add(uint16(1), uint8(1), uint8(1), uint8(0), uint8(1), uint64(1), uint8(0))
	f.Add(uint16(33), uint8(5), uint8(13), uint8(3), uint8(12), uint64(2), uint8(1))
	f.Add(uint16(2048), uint8(4), uint8(8), uint8(0), uint8(8), uint64(3), uint8(2))
	f.Fuzz(func(t *testing.T, k uint16, m, n, n0, n1 uint8, seed uint64, typ uint8) {
		c := mmCase{k: int(k%3000) + 1, m: int(m%12) + 1, n: int(n%20) + 1}
		c.n0, c.n1 = int(n0)%c.n, int(n1)%(c.n+1)
		if c.n0 > c.n1 {
			c.n0, c.n1 = c.n1, c.n0
		}
		wt := []tensor.DType{tensor.F32, tensor.F16, tensor.BF16}[typ%3]
		checkParityF(t, wt, c, seed)
	})
}

// checkParity compares the fast kernels with the generic ones on the same random inputs.
func checkParity(t *testing.T, wt tensor.DType, c mmCase, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	w := randWeights(r, wt, c.n, c.k)
	a := make([]byte, c.m*c.k/32*34)
	quantizeQ8Generic(a, randFloats(r, c.m*c.k))
	ref := make([]float32, c.m*c.n)
	func() {
		defer ForceGeneric()()
		if err := MatMul(wt, w, c.k, a, c.m, ref, c.n, c.n0, c.n1); err != nil {
			t.Fatal(err)
		}
	}()
	abs := absSums(c, func(j int) []float64 { return dequant(wt, w[j*wt.RowBytes(c.k):], c.k) },
		func(i int) []float64 { return dequant(tensor.Q8_0, a[i*c.k/32*34:], c.k) })
	for _, fam := range fastFamilies() {
		func() {
			defer use(fam)()
			fast := make([]float32, c.m*c.n)
			if err := MatMul(wt, w, c.k, a, c.m, fast, c.n, c.n0, c.n1); err != nil {
				t.Fatal(err)
			}
			compareParity(t, c, fast, ref, abs, c.k/32)
		}()
	}
}

func checkParityF(t *testing.T, wt tensor.DType, c mmCase, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 98))
	w := randWeights(r, wt, c.n, c.k)
	x := randFloats(r, c.m*c.k)
	ref := make([]float32, c.m*c.n)
	func() {
		defer ForceGeneric()()
		if err := MatMulF(wt, w, c.k, x, c.m, ref, c.n, c.n0, c.n1); err != nil {
			t.Fatal(err)
		}
	}()
	abs := absSums(c, func(j int) []float64 { return dequant(wt, w[j*wt.RowBytes(c.k):], c.k) },
		func(i int) []float64 {
			out := make([]float64, c.k)
			for e := range out {
				out[e] = float64(x[i*c.k+e])
			}
			return out
		})
	for _, fam := range fastFamilies() {
		func() {
			defer use(fam)()
			fast := make([]float32, c.m*c.n)
			if err := MatMulF(wt, w, c.k, x, c.m, fast, c.n, c.n0, c.n1); err != nil {
				t.Fatal(err)
			}
			compareParity(t, c, fast, ref, abs, c.k)
		}()
	}
}

// absSums is Σk |W[j][k]·A[i][k]| for every output, the scale of the rounding error any summation order makes.
func absSums(c mmCase, wrow, arow func(int) []float64) []float64 {
	out := make([]float64, c.m*c.n)
	ws := make([][]float64, c.n)
	for j := c.n0; j < c.n1; j++ {
		ws[j] = wrow(j)
	}
	for i := 0; i < c.m; i++ {
		ai := arow(i)
		for j := c.n0; j < c.n1; j++ {
			for e, v := range ws[j] {
				out[i*c.n+j] += math.Abs(v * ai[e])
			}
		}
	}
	return out
}

// compareParity allows the two kernels' different summation orders: each is within float32 accumulation error of
// the exact sum (bounded by terms·ε·Σ|products|), so they are within twice that of each other. Outside the column
// range both must have left dst alone.
func compareParity(t *testing.T, c mmCase, fast, ref []float32, abs []float64, terms int) {
	t.Helper()
	for i, v := range ref {
		if d := math.Abs(float64(fast[i] - v)); d > abs[i]*float64(terms+8)*2*6e-8+1e-30 {
			t.Fatalf("%v (%s): dst[%d] = %g, generic %g (Σ|terms| %g)", c, Variant(), i, fast[i], v, abs[i])
		}
	}
}

func TestQuantizeQ8_0Families(t *testing.T) {
	// A block whose largest magnitude is 127 has d = 1 and id = 1, so these values land exactly on ties.
	ties := make([]float32, 64)
	for i := range ties {
		ties[i] = float32(i%32) - 15.5
	}
	ties[0], ties[1], ties[2], ties[3] = 127, 0.5, -2.5, 126.5
	ties[32], ties[33], ties[34] = -127, 0.49999997, -0.49999997
	r := rand.New(rand.NewPCG(8, 8))
	inputs := map[string][]float32{"ties": ties, "random values": randFloats(r, 32*37), "zeros": make([]float32, 64)}
	for _, fam := range families() {
		for name, x := range inputs {
			t.Run(fmt.Sprintf("%s quantization matches the reference bit for bit on %s", fam.name, name), func(t *testing.T) {
				defer use(fam)()
				got := make([]byte, len(x)/32*34)
				if err := QuantizeQ8_0(got, x); err != nil {
					t.Fatal(err)
				}
				want := make([]byte, len(got))
				quantizeQ8Generic(want, x)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("byte %d (block %d): %#02x, reference %#02x", i, i/34, got[i], want[i])
					}
				}
			})
		}
	}
	t.Run("the reference rounds ties away from zero", func(t *testing.T) {
		q := make([]byte, 68)
		quantizeQ8Generic(q, ties)
		if int8(q[3]) != 1 || int8(q[4]) != -3 || int8(q[5]) != 127 || int8(q[34+3]) != 0 || int8(q[34+4]) != 0 {
			t.Fatalf("got %d %d %d %d %d", int8(q[3]), int8(q[4]), int8(q[5]), int8(q[37]), int8(q[38]))
		}
	})
}

func FuzzQuantizeQ8Parity(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567"), float32(1))
	f.Fuzz(func(t *testing.T, raw []byte, scale float32) {
		n := len(raw) / 4 / 32 * 32
		if n == 0 || scale != scale || math.IsInf(float64(scale), 0) {
			return
		}
		x := make([]float32, n)
		for i := range x {
			v := math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
			if v != v || math.IsInf(float64(v), 0) {
				v = 1
			}
			x[i] = v * scale
			if math.IsInf(float64(x[i]), 0) || x[i] != x[i] {
				x[i] = scale
			}
		}
		want := make([]byte, n/32*34)
		quantizeQ8Generic(want, x)
		for _, fam := range fastFamilies() {
			func() {
				defer use(fam)()
				got := make([]byte, len(want))
				if err := QuantizeQ8_0(got, x); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s: byte %d: %#02x, reference %#02x (block %v)", fam.name, i, got[i], want[i], x[i/34*32:i/34*32+32])
					}
				}
			}()
		}
	})
}

// MatMulFStrided reads the first k elements of rows that start stride bytes apart: it must give exactly MatMulF's
// result on those elements copied out, in every family, including k with a tail the vector kernels leave.
func TestMatMulFStridedEqualsTheProductOfTheCompactedRows(t *testing.T) {
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		for _, fam := range families() {
			for _, c := range mmFCases {
				t.Run(fmt.Sprintf("%s %v %v", fam.name, wt, c), func(t *testing.T) {
					defer use(fam)()
					r := rand.New(rand.NewPCG(7, uint64(c.k)))
					wide := c.k + 1 + r.IntN(20) // each row is longer than the product reads
					w := randWeights(r, wt, c.n, wide)
					rb, sb := wt.RowBytes(c.k), wt.RowBytes(wide)
					compact := make([]byte, 0, c.n*rb)
					for j := 0; j < c.n; j++ {
						compact = append(compact, w[j*sb:j*sb+rb]...)
					}
					x := randFloats(r, c.m*c.k)
					got, want := make([]float32, c.m*c.n), make([]float32, c.m*c.n)
					if err := MatMulFStrided(wt, w, c.k, sb, x, c.m, got, c.n, c.n0, c.n1); err != nil {
						t.Fatal(err)
					}
					if err := MatMulF(wt, compact, c.k, x, c.m, want, c.n, c.n0, c.n1); err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("dst[%d] = %v strided, %v compacted", i, got[i], want[i])
						}
					}
				})
			}
		}
	}
	w, x, dst := make([]byte, 4*10), make([]float32, 4), make([]float32, 2)
	if err := MatMulFStrided(tensor.F32, w, 4, 8, x, 1, dst, 2, 0, 2); err == nil || !strings.Contains(err.Error(), "8 bytes apart cannot hold 4") {
		t.Fatalf("a stride shorter than a row: %v", err)
	}
	if err := MatMulFStrided(tensor.F32, w, 4, 32, x, 1, dst, 2, 0, 2); err == nil || !strings.Contains(err.Error(), "need 48") {
		t.Fatalf("rows past the end of the weights: %v", err)
	}
}
