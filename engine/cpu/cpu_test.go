package cpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// testPool has more workers than this machine's cores on purpose: chunks must be claimed correctly by many.
var testPool = pool.New(3)

func randF32(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// weight makes a tensor of type dt from random values, and returns the values the tensor really holds (after
// quantization), decoded by the tensor package rather than by this package.
func weight(t *testing.T, rng *rand.Rand, name string, dt tensor.DType, ne ...int) (*graph.Tensor, []float32) {
	t.Helper()
	w := &graph.Tensor{Name: name, Type: dt, Layout: tensor.Plain}
	copy(w.Ne[:], []int{1, 1, 1, 1})
	copy(w.Ne[:], ne)
	vals := randF32(rng, w.Elems())
	w.Data = make([]byte, w.Bytes())
	if dt == tensor.F32 {
		// F32 weights loaded from a file carry both views of their bytes, as the model loader makes them.
		w.F32 = vals
		for i, v := range vals {
			binary.LittleEndian.PutUint32(w.Data[4*i:], math.Float32bits(v))
		}
		return w, vals
	}
	if err := tensor.Quantize(dt, vals, w.Data); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, len(vals))
	if err := tensor.Dequantize(dt, w.Data, back); err != nil {
		t.Fatal(err)
	}
	return w, back
}

func f32Tensor(name string, x []float32, ne ...int) *graph.Tensor {
	t := &graph.Tensor{Name: name, Type: tensor.F32, Layout: tensor.Plain, F32: x}
	copy(t.Ne[:], []int{1, 1, 1, 1})
	copy(t.Ne[:], ne)
	return t
}

func i32Tensor(name string, x []int32, ne ...int) *graph.Tensor {
	t := &graph.Tensor{Name: name, Type: tensor.I32, Layout: tensor.Plain, I32: x}
	copy(t.Ne[:], []int{1, 1, 1, 1})
	copy(t.Ne[:], ne)
	return t
}

// closeTo compares got with want elementwise, relative to the size of want's largest element.
func closeTo(t *testing.T, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	scale := 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	scale = math.Max(scale, 1e-6)
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > tol*scale || math.IsNaN(float64(got[i])) {
			t.Fatalf("element %d: got %g, want %g (|diff| %.3g > %.3g)", i, got[i], want[i], d, tol*scale)
		}
	}
}

func run(t *testing.T, b *Backend, op *graph.Op) string {
	t.Helper()
	if ok, why := b.SupportsOp(op); !ok {
		t.Fatalf("SupportsOp refused %s: %s", op.Kind, why)
	}
	k, err := b.Compute(op)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// loopMatMul is the plain definition: dst[m][n] = Σk w[n][k]·x[m][k], summed in float64.
func loopMatMul(w, x []float32, k, n, m int) []float32 {
	dst := make([]float32, n*m)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				s += float64(w[j*k+l]) * float64(x[i*k+l])
			}
			dst[i*n+j] = float32(s)
		}
	}
	return dst
}

// q8Round is what the fast path does to activations: quantize each row to Q8_0 and back.
func q8Round(t *testing.T, x []float32) []float32 {
	t.Helper()
	q := make([]byte, tensor.Q8_0.RowBytes(len(x)))
	if err := tensor.Quantize(tensor.Q8_0, x, q); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, len(x))
	if err := tensor.Dequantize(tensor.Q8_0, q, back); err != nil {
		t.Fatal(err)
	}
	return back
}

var matShapesTable = []struct{ k, n, m int }{{64, 37, 5}, {96, 1, 3}, {32, 130, 1}, {160, 19, 9}, {256, 3, 17}}

var weightTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0}

func TestMulMatMatchesThePlainLoopForEveryWeightType(t *testing.T) {
	for _, reference := range []bool{true, false} {
		b := New(testPool, Options{Reference: reference})
		for _, dt := range weightTypes {
			for _, sh := range matShapesTable {
				name := "reference"
				if !reference {
					name = "fast"
				}
				t.Run(name+" mode multiplies "+dt.String()+" weights", func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(sh.k), uint64(sh.n)))
					w, wv := weight(t, rng, "w", dt, sh.k, sh.n)
					x := randF32(rng, sh.k*sh.m)
					dst := f32Tensor("dst", make([]float32, sh.n*sh.m), sh.n, sh.m)
					op := &graph.Op{Kind: graph.MulMat, Name: "mm", Dst: dst, Src: []*graph.Tensor{w, f32Tensor("x", x, sh.k, sh.m)}}
					kernel := run(t, b, op)
					xr, tol := x, 1e-5
					p := b.pathFor(w, sh.k)
					if reference != (p == pathReference) {
						t.Fatalf("reference mode %v took path %d", reference, p)
					}
					if p == pathQuant {
						xr, tol = make([]float32, len(x)), 1e-4
						for i := 0; i < sh.m; i++ {
							copy(xr[i*sh.k:], q8Round(t, x[i*sh.k:(i+1)*sh.k]))
						}
					}
					if want := map[bool]string{true: KernelReference, false: fastVariant()}[p == pathReference]; kernel != want {
						t.Fatalf("kernel %q, want %q", kernel, want)
					}
					closeTo(t, dst.F32, loopMatMul(wv, xr, sh.k, sh.n, sh.m), tol)
				})
			}
		}
	}
}

func TestMulMatIDMatchesPerTokenLoops(t *testing.T) {
	cases := []struct {
		name          string
		k, n, e, u, m int
		sharedInput   bool
		dt            tensor.DType
	}{
		{name: "shared input rows reach each chosen expert", k: 64, n: 24, e: 5, u: 2, m: 7, sharedInput: true, dt: tensor.Q4_0},
		{name: "per-slot input rows reach their own expert", k: 96, n: 13, e: 4, u: 3, m: 5, dt: tensor.Q8_0},
		{name: "a single decode token uses two experts", k: 32, n: 40, e: 8, u: 2, m: 1, sharedInput: true, dt: tensor.Q4_0},
		{name: "a prompt's rows are gathered and scattered in parallel", k: 4096, n: 8, e: 4, u: 2, m: 100, sharedInput: true, dt: tensor.Q8_0},
		{name: "f16 experts of a ragged width", k: 48, n: 7, e: 3, u: 2, m: 4, dt: tensor.F16},
		{name: "bf16 experts with per-slot inputs", k: 40, n: 9, e: 4, u: 2, m: 3, dt: tensor.BF16},
		{name: "f32 experts with a shared input", k: 33, n: 5, e: 3, u: 3, m: 2, sharedInput: true, dt: tensor.F32},
	}
	for _, reference := range []bool{true, false} {
		b := New(testPool, Options{Reference: reference})
		for _, c := range cases {
			t.Run(c.name+map[bool]string{true: " (reference)", false: " (fast)"}[reference], func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(c.k), uint64(c.e)))
				w, wv := weight(t, rng, "exps", c.dt, c.k, c.n, c.e)
				xu := c.u
				if c.sharedInput {
					xu = 1
				}
				x := randF32(rng, c.k*xu*c.m)
				ids := make([]int32, c.u*c.m)
				for i := 0; i < c.m; i++ {
					perm := rng.Perm(c.e)
					for s := 0; s < c.u; s++ {
						ids[i*c.u+s] = int32(perm[s])
					}
				}
				dst := f32Tensor("dst", make([]float32, c.n*c.u*c.m), c.n, c.u, c.m)
				op := &graph.Op{Kind: graph.MulMatID, Name: "mmid", Dst: dst, Src: []*graph.Tensor{
					w, f32Tensor("x", x, c.k, xu, c.m), i32Tensor("ids", ids, c.u, c.m)}}
				run(t, b, op)
				fast := b.pathFor(w, c.k) == pathQuant
				want := make([]float32, c.n*c.u*c.m)
				for i := 0; i < c.m; i++ {
					for s := 0; s < c.u; s++ {
						r := i*xu + min(s, xu-1)
						xrow := x[r*c.k : (r+1)*c.k]
						if fast {
							xrow = q8Round(t, xrow)
						}
						e := int(ids[i*c.u+s])
						copy(want[(i*c.u+s)*c.n:], loopMatMul(wv[e*c.n*c.k:(e+1)*c.n*c.k], xrow, c.k, c.n, 1))
					}
				}
				closeTo(t, dst.F32, want, 1e-4)
			})
		}
	}
}

func TestMulMatIDRejectsAnExpertIDOutOfRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w, _ := weight(t, rng, "exps", tensor.Q4_0, 32, 4, 3)
	op := &graph.Op{Kind: graph.MulMatID, Name: "blk.0.ffn_up_exps", Dst: f32Tensor("d", make([]float32, 4*2), 4, 2, 1),
		Src: []*graph.Tensor{w, f32Tensor("x", randF32(rng, 32), 32, 1, 1), i32Tensor("ids", []int32{0, 3}, 2, 1)}}
	_, err := New(testPool, Options{}).Compute(op)
	if err == nil || !strings.Contains(err.Error(), "expert 3 of 3") {
		t.Fatalf("got %v, want an error naming expert 3 of 3", err)
	}
}

func TestElementwiseOpsMatchTheirDefinitions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const k, r = 37, 5
	x, y, bias := randF32(rng, k*r), randF32(rng, k*r), randF32(rng, k)
	w := randF32(rng, k)
	each := func(f func(i int) float32) []float32 {
		out := make([]float32, k*r)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	sig := func(v float32) float64 { return 1 / (1 + math.Exp(-float64(v))) }
	rms := func(i int) float64 {
		row := x[i/k*k : i/k*k+k]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		return 1 / math.Sqrt(s/k+1e-6)
	}
	cases := []struct {
		name string
		kind graph.Kind
		src  []*graph.Tensor
		p    graph.Params
		want []float32
	}{
		{"ADD adds a bias to every row", graph.Add, []*graph.Tensor{f32Tensor("x", x, k, r), f32Tensor("b", bias, k)}, graph.Params{},
			each(func(i int) float32 { return x[i] + bias[i%k] })},
		{"ADD adds two tensors of one shape", graph.Add, []*graph.Tensor{f32Tensor("x", x, k, r), f32Tensor("y", y, k, r)}, graph.Params{},
			each(func(i int) float32 { return x[i] + y[i] })},
		{"MUL scales each channel", graph.Mul, []*graph.Tensor{f32Tensor("x", x, k, r), f32Tensor("w", w, k)}, graph.Params{},
			each(func(i int) float32 { return x[i] * w[i%k] })},
		{"SILU is x times sigmoid x", graph.SiLU, []*graph.Tensor{f32Tensor("x", x, k, r)}, graph.Params{},
			each(func(i int) float32 { return float32(float64(x[i]) * sig(x[i])) })},
		{"SWIGLU is silu of gate times up", graph.SwiGLU, []*graph.Tensor{f32Tensor("g", x, k, r), f32Tensor("u", y, k, r)}, graph.Params{},
			each(func(i int) float32 { return float32(float64(x[i]) * sig(x[i]) * float64(y[i])) })},
		{"SCALE multiplies by a constant", graph.Scale, []*graph.Tensor{f32Tensor("x", x, k, r)}, graph.Params{Scale: -0.25},
			each(func(i int) float32 { return x[i] * -0.25 })},
		{"COPY copies", graph.Copy, []*graph.Tensor{f32Tensor("x", x, k, r)}, graph.Params{}, x},
		{"RMS_NORM with a weight", graph.RMSNorm, []*graph.Tensor{f32Tensor("x", x, k, r), f32Tensor("w", w, k)}, graph.Params{Eps: 1e-6},
			each(func(i int) float32 { return float32(float64(x[i]) * rms(i) * float64(w[i%k])) })},
		{"RMS_NORM without a weight", graph.RMSNorm, []*graph.Tensor{f32Tensor("x", x, k, r)}, graph.Params{Eps: 1e-6},
			each(func(i int) float32 { return float32(float64(x[i]) * rms(i)) })},
		{"SOFT_MAX normalises each row", graph.SoftMax, []*graph.Tensor{f32Tensor("x", x, k, r)}, graph.Params{},
			each(func(i int) float32 {
				row := x[i/k*k : i/k*k+k]
				var s float64
				for _, v := range row {
					s += math.Exp(float64(v))
				}
				return float32(math.Exp(float64(x[i])) / s)
			})},
	}
	b := New(testPool, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := f32Tensor("dst", make([]float32, k*r), k, r)
			run(t, b, &graph.Op{Kind: c.kind, Name: c.name, Dst: dst, Src: c.src, Params: c.p})
			closeTo(t, dst.F32, c.want, 1e-5)
		})
	}
}

func TestRoPERotatesPairsByPositionAngles(t *testing.T) {
	const d, h, m, theta = 12, 3, 4, 10000.0
	for _, c := range []struct {
		name string
		neox bool
		dims int
	}{
		{"NeoX pairs the halves of the head", true, 12},
		{"normal pairs neighbours", false, 12},
		{"partial rotation leaves the tail alone", true, 8},
		{"partial normal rotation leaves the tail alone", false, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(c.dims)))
			x := randF32(rng, d*h*m)
			pos := []int32{0, 5, 17, 1000}
			dst := f32Tensor("dst", make([]float32, d*h*m), d, h, m)
			run(t, New(testPool, Options{}), &graph.Op{Kind: graph.RoPE, Name: "rope", Dst: dst,
				Src:    []*graph.Tensor{f32Tensor("x", x, d, h, m), i32Tensor("pos", pos, m)},
				Params: graph.Params{RopeTheta: theta, RopeDims: c.dims, RopeNeoX: c.neox}})
			want := append([]float32(nil), x...)
			for t := 0; t < m; t++ {
				for hh := 0; hh < h; hh++ {
					v := want[(t*h+hh)*d : (t*h+hh+1)*d]
					for i := 0; i < c.dims/2; i++ {
						a := float64(pos[t]) / math.Pow(theta, float64(2*i)/float64(c.dims))
						i0, i1 := 2*i, 2*i+1
						if c.neox {
							i0, i1 = i, i+c.dims/2
						}
						x0, x1 := float64(v[i0]), float64(v[i1])
						v[i0] = float32(x0*math.Cos(a) - x1*math.Sin(a))
						v[i1] = float32(x0*math.Sin(a) + x1*math.Cos(a))
					}
				}
			}
			closeTo(t, dst.F32, want, 1e-5)
		})
	}
}

func TestGetRowsDecodesTheChosenRows(t *testing.T) {
	for _, dt := range weightTypes {
		t.Run("rows of a "+dt.String()+" table", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, uint64(dt)))
			const k, v = 64, 11
			table, vals := weight(t, rng, "token_embd", dt, k, v)
			ids := []int32{3, 0, 10, 3}
			dst := f32Tensor("dst", make([]float32, k*len(ids)), k, len(ids))
			run(t, New(testPool, Options{}), &graph.Op{Kind: graph.GetRows, Name: "embd", Dst: dst,
				Src: []*graph.Tensor{table, i32Tensor("ids", ids, len(ids))}})
			var want []float32
			for _, id := range ids {
				want = append(want, vals[int(id)*k:(int(id)+1)*k]...)
			}
			closeTo(t, dst.F32, want, 0)
		})
	}
	t.Run("an id past the table is an error, not a panic", func(t *testing.T) {
		table := f32Tensor("token_embd", make([]float32, 8), 4, 2)
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.GetRows, Name: "embd",
			Dst: f32Tensor("d", make([]float32, 4), 4, 1), Src: []*graph.Tensor{table, i32Tensor("ids", []int32{2}, 1)}})
		if err == nil || !strings.Contains(err.Error(), "id 2") {
			t.Fatalf("got %v, want an error naming id 2", err)
		}
	})
}

// loopAttention is causal grouped-query attention written out directly, over a K cache [D,Ctx,Hkv] and a
// transposed V cache [Ctx,D,Hkv].
func loopAttention(q, kc, vc []float32, d, hq, hkv, m, past, ctx int) []float32 {
	out := make([]float32, d*hq*m)
	for t := 0; t < m; t++ {
		for h := 0; h < hq; h++ {
			g := h / (hq / hkv)
			n := past + t + 1
			s := make([]float64, n)
			mx := math.Inf(-1)
			for j := 0; j < n; j++ {
				for i := 0; i < d; i++ {
					s[j] += float64(q[(t*hq+h)*d+i]) * float64(kc[(g*ctx+j)*d+i])
				}
				s[j] /= math.Sqrt(float64(d))
				mx = math.Max(mx, s[j])
			}
			var sum float64
			for j := range s {
				s[j] = math.Exp(s[j] - mx)
				sum += s[j]
			}
			for i := 0; i < d; i++ {
				var o float64
				for j := range s {
					o += s[j] / sum * float64(vc[(g*d+i)*ctx+j])
				}
				out[(t*hq+h)*d+i] = float32(o)
			}
		}
	}
	return out
}

func TestAttentionMatchesTheCausalGroupedDefinition(t *testing.T) {
	for _, reference := range []bool{true, false} {
		for _, c := range []struct {
			name                     string
			d, hq, hkv, m, past, ctx int
		}{
			{"a prompt with an empty cache", 8, 4, 2, 5, 0, 16},
			{"a decode step after a prompt", 16, 6, 2, 1, 9, 12},
			{"a chunk after earlier chunks, one KV head", 8, 3, 1, 3, 4, 8},
			{"a long prompt split over many blocks", 32, 8, 2, 70, 3, 80},
			{"Qwen3-30B-A3B's heads: 128 wide, 8 queries per KV head", 128, 32, 4, 6, 5, 16},
		} {
			mode := map[bool]string{true: " (reference)", false: " (fast)"}[reference]
			t.Run(c.name+mode, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(c.d), uint64(c.past)))
				q := randF32(rng, c.d*c.hq*c.m)
				kc, vc := randF32(rng, c.d*c.hkv*c.ctx), randF32(rng, c.d*c.hkv*c.ctx)
				kt, vt := f32Tensor("k", kc, c.d, c.ctx, c.hkv), f32Tensor("v", vc, c.ctx, c.d, c.hkv)
				n := c.past + c.m
				kw := &graph.Tensor{Name: "k", Type: tensor.F32, Ne: [4]int{c.d, n, c.hkv, 1}, F32: kc, ViewSrc: kt}
				vw := &graph.Tensor{Name: "v", Type: tensor.F32, Ne: [4]int{n, c.d, c.hkv, 1}, F32: vc, ViewSrc: vt}
				dst := f32Tensor("dst", make([]float32, c.d*c.hq*c.m), c.d*c.hq, c.m)
				run(t, New(testPool, Options{Reference: reference}), &graph.Op{Kind: graph.Attention, Name: "attn", Dst: dst,
					Src:    []*graph.Tensor{f32Tensor("q", q, c.d, c.hq, c.m), kw, vw},
					Params: graph.Params{NPast: c.past, HeadsKV: c.hkv, HeadDim: c.d, Causal: true}})
				closeTo(t, dst.F32, loopAttention(q, kc, vc, c.d, c.hq, c.hkv, c.m, c.past, c.ctx), 1e-5)
			})
		}
	}
	t.Run("a cache too short for the positions is an error", func(t *testing.T) {
		kt, vt := f32Tensor("k", make([]float32, 16), 8, 2, 1), f32Tensor("v", make([]float32, 16), 2, 8, 1)
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.Attention, Name: "attn",
			Dst:    f32Tensor("dst", make([]float32, 8*2), 8*2, 1),
			Src:    []*graph.Tensor{f32Tensor("q", make([]float32, 16), 8, 2, 1), kt, vt},
			Params: graph.Params{NPast: 2, HeadsKV: 1, HeadDim: 8, Causal: true}})
		if err == nil || !strings.Contains(err.Error(), "caches hold 2") {
			t.Fatalf("got %v, want an error about the caches' length", err)
		}
	})
}

func TestStoreKVWritesEachLayoutAtThePastPositions(t *testing.T) {
	const d, h, m, ctx, past = 4, 3, 2, 6, 3
	x := randF32(rand.New(rand.NewPCG(8, 8)), d*h*m)
	for _, tr := range []bool{false, true} {
		t.Run(map[bool]string{false: "keys land as rows per position", true: "values land transposed"}[tr], func(t *testing.T) {
			cache := f32Tensor("cache", make([]float32, d*h*ctx), d, ctx, h)
			if tr {
				cache.Ne = [4]int{ctx, d, h, 1}
			}
			win := &graph.Tensor{Name: "cache", Type: tensor.F32, Ne: [4]int{d, m, h, 1}, F32: cache.F32, ViewSrc: cache}
			run(t, New(testPool, Options{}), &graph.Op{Kind: graph.StoreKV, Name: "store", Dst: win,
				Src: []*graph.Tensor{f32Tensor("x", x, d, h, m)}, Params: graph.Params{NPast: past, Transposed: tr}})
			for tok := 0; tok < m; tok++ {
				for g := 0; g < h; g++ {
					for i := 0; i < d; i++ {
						at := (g*ctx+past+tok)*d + i
						if tr {
							at = (g*d+i)*ctx + past + tok
						}
						if cache.F32[at] != x[(tok*h+g)*d+i] {
							t.Fatalf("token %d head %d dim %d: cache has %g, want %g", tok, g, i, cache.F32[at], x[(tok*h+g)*d+i])
						}
					}
				}
			}
			nonzero := 0
			for _, v := range cache.F32 {
				if v != 0 {
					nonzero++
				}
			}
			if nonzero != d*h*m {
				t.Fatalf("%d cache entries written, want %d", nonzero, d*h*m)
			}
		})
	}
	t.Run("positions past the cache are an error", func(t *testing.T) {
		cache := f32Tensor("cache", make([]float32, d*h*ctx), d, ctx, h)
		win := &graph.Tensor{Name: "cache", Type: tensor.F32, Ne: [4]int{d, m, h, 1}, F32: cache.F32, ViewSrc: cache}
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.StoreKV, Name: "store", Dst: win,
			Src: []*graph.Tensor{f32Tensor("x", x, d, h, m)}, Params: graph.Params{NPast: ctx - 1}})
		if err == nil || !strings.Contains(err.Error(), "do not fit") {
			t.Fatalf("got %v, want an error about positions that do not fit", err)
		}
	})
}

func TestTheMoERouterOpsPickWeighAndSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const e, u, m, n = 9, 3, 4, 10
	logits := randF32(rng, e*m)
	probs := make([]float32, e*m)
	for i := range probs {
		probs[i] = rng.Float32() + 0.01
	}
	b := New(testPool, Options{})
	t.Run("TOP_K returns the largest indices, best first", func(t *testing.T) {
		dst := i32Tensor("top", make([]int32, u*m), u, m)
		run(t, b, &graph.Op{Kind: graph.TopK, Name: "topk", Dst: dst, Src: []*graph.Tensor{f32Tensor("l", logits, e, m)}, Params: graph.Params{K: u}})
		for i := 0; i < m; i++ {
			row := logits[i*e : (i+1)*e]
			idx := make([]int, e)
			for j := range idx {
				idx[j] = j
			}
			for a := 0; a < e; a++ { // selection sort, descending
				for c := a + 1; c < e; c++ {
					if row[idx[c]] > row[idx[a]] {
						idx[a], idx[c] = idx[c], idx[a]
					}
				}
			}
			for s := 0; s < u; s++ {
				if int(dst.I32[i*u+s]) != idx[s] {
					t.Fatalf("token %d: got %v, want %v", i, dst.I32[i*u:(i+1)*u], idx[:u])
				}
			}
		}
	})
	ids := []int32{8, 0, 3, 1, 2, 7, 4, 0, 6, 5, 7, 8}
	for _, norm := range []bool{false, true} {
		t.Run(map[bool]string{false: "MOE_WEIGHTS gathers the chosen probabilities", true: "MOE_WEIGHTS renormalises them to sum to one"}[norm], func(t *testing.T) {
			dst := f32Tensor("w", make([]float32, u*m), u, m)
			run(t, b, &graph.Op{Kind: graph.MoEWeights, Name: "w", Dst: dst,
				Src: []*graph.Tensor{f32Tensor("p", probs, e, m), i32Tensor("ids", ids, u, m)}, Params: graph.Params{Normalize: norm}})
			want := make([]float32, u*m)
			for i := 0; i < m; i++ {
				var s float32
				for j := 0; j < u; j++ {
					want[i*u+j] = probs[i*e+int(ids[i*u+j])]
					s += want[i*u+j]
				}
				for j := 0; j < u && norm; j++ {
					want[i*u+j] /= s
				}
			}
			closeTo(t, dst.F32, want, 1e-5)
		})
	}
	t.Run("MOE_SUM weighs each expert's output", func(t *testing.T) {
		x, w := randF32(rng, n*u*m), randF32(rng, u*m)
		dst := f32Tensor("out", make([]float32, n*m), n, m)
		run(t, b, &graph.Op{Kind: graph.MoESum, Name: "sum", Dst: dst, Src: []*graph.Tensor{f32Tensor("x", x, n, u, m), f32Tensor("w", w, u, m)}})
		want := make([]float32, n*m)
		for i := 0; i < m; i++ {
			for s := 0; s < u; s++ {
				for j := 0; j < n; j++ {
					want[i*n+j] += w[i*u+s] * x[(i*u+s)*n+j]
				}
			}
		}
		closeTo(t, dst.F32, want, 1e-5)
	})
}

// The seed's bug 1: a capability check that was really an acceleration check. The CPU computes MUL_MAT for any
// plain weight it can read, whatever another backend would do with it.
func TestSupportsOpAcceptsMulMatOnEveryPlainWeight(t *testing.T) {
	b := New(testPool, Options{})
	for _, dt := range weightTypes {
		for _, buf := range []string{"CPU", "AMX", "CUDA_Host"} {
			t.Run(dt.String()+" weight in a "+buf+" buffer in the plain layout", func(t *testing.T) {
				w, _ := weight(t, rand.New(rand.NewPCG(1, 1)), "blk.0.ffn_down_exps.weight", dt, 32, 3)
				w.BufferType = buf
				op := &graph.Op{Kind: graph.MulMat, Name: "mm", Dst: f32Tensor("d", make([]float32, 3), 3, 1),
					Src: []*graph.Tensor{w, f32Tensor("x", make([]float32, 32), 32, 1)}}
				if ok, why := b.SupportsOp(op); !ok {
					t.Fatalf("refused: %s", why)
				}
			})
		}
	}
}

// The seed's bug 2: VNNI-packed experts read as plain Q4_0 turned into NaN. A packed layout is refused by
// SupportsOp, and a kernel handed one anyway returns an error naming tensor, op and layout.
func TestPackedLayoutsAreRefusedNeverMisread(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	w, _ := weight(t, rng, "blk.1.ffn_up_exps.weight", tensor.Q4_0, 32, 4, 2)
	w.Layout, w.BufferType = "amx-vnni", "AMX"
	op := &graph.Op{Kind: graph.MulMatID, Name: "blk.1.ffn_up_exps", Dst: f32Tensor("d", make([]float32, 4), 4, 1, 1),
		Src: []*graph.Tensor{w, f32Tensor("x", randF32(rng, 32), 32, 1, 1), i32Tensor("ids", []int32{1}, 1, 1)}}
	for _, reference := range []bool{true, false} {
		b := New(testPool, Options{Reference: reference})
		t.Run("SupportsOp names the layout", func(t *testing.T) {
			ok, why := b.SupportsOp(op)
			if ok || !strings.Contains(why, "amx-vnni") || !strings.Contains(why, w.Name) {
				t.Fatalf("SupportsOp = %v, %q; want a refusal naming the tensor and its layout", ok, why)
			}
		})
		t.Run("Compute returns a layout error", func(t *testing.T) {
			_, err := b.Compute(op)
			var le *LayoutError
			if !errors.As(err, &le) || le.Tensor != w.Name || le.Layout != "amx-vnni" || !strings.Contains(le.Op, "MUL_MAT_ID") {
				t.Fatalf("got %v, want a LayoutError naming %s, MUL_MAT_ID and amx-vnni", err, w.Name)
			}
			for _, v := range op.Dst.F32 {
				if v != 0 {
					t.Fatal("the destination was written")
				}
			}
		})
	}
}

func TestTheCPUBufferTypeTakesEveryWeightAndKeepsItPlain(t *testing.T) {
	bt := BufferType()
	w, _ := weight(t, rand.New(rand.NewPCG(4, 4)), "blk.0.attn_q.weight", tensor.Q4_0, 64, 2)
	if err := bt.Import(w); err != nil {
		t.Fatal(err)
	}
	if w.BufferType != "CPU" || w.Layout != tensor.Plain {
		t.Fatalf("imported as %s/%s", w.BufferType, w.Layout)
	}
	short := &graph.Tensor{Name: "short", Type: tensor.Q4_0, Ne: [4]int{64, 2, 1, 1}, Data: make([]byte, 10)}
	if err := bt.Import(short); err == nil || !strings.Contains(err.Error(), "short") {
		t.Fatalf("a truncated weight imported: %v", err)
	}
}

// f16Cache is an F16 cache holding vals rounded to F16, and those rounded values as float32 for the references.
func f16Cache(name string, vals []float32, ne ...int) (*graph.Tensor, []float32) {
	t := &graph.Tensor{Name: name, Type: tensor.F16, Layout: tensor.Plain, Ne: [4]int{1, 1, 1, 1}, Data: make([]byte, 2*len(vals))}
	copy(t.Ne[:], ne)
	rounded := make([]float32, len(vals))
	for i, v := range vals {
		h := tensor.F32ToF16(v)
		t.Data[2*i], t.Data[2*i+1] = byte(h), byte(h>>8)
		rounded[i] = tensor.F16ToF32(h)
	}
	return t, rounded
}

func TestAttentionOverAnF16CacheMatchesTheDefinitionOnItsValues(t *testing.T) {
	for _, reference := range []bool{true, false} {
		for _, c := range []struct{ d, hq, hkv, m, past, ctx int }{{8, 4, 2, 5, 0, 16}, {16, 6, 2, 1, 9, 12}, {32, 8, 2, 70, 3, 80}, {128, 32, 4, 1, 40, 64}} {
			t.Run(fmt.Sprintf("%+v reference=%v", c, reference), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(c.d), uint64(c.past+1)))
				q := randF32(rng, c.d*c.hq*c.m)
				kt, kc := f16Cache("k", randF32(rng, c.d*c.hkv*c.ctx), c.d, c.ctx, c.hkv)
				vt, vc := f16Cache("v", randF32(rng, c.d*c.hkv*c.ctx), c.ctx, c.d, c.hkv)
				n := c.past + c.m
				kw := &graph.Tensor{Name: "k", Type: tensor.F16, Ne: [4]int{c.d, n, c.hkv, 1}, Data: kt.Data, ViewSrc: kt}
				vw := &graph.Tensor{Name: "v", Type: tensor.F16, Ne: [4]int{n, c.d, c.hkv, 1}, Data: vt.Data, ViewSrc: vt}
				dst := f32Tensor("dst", make([]float32, c.d*c.hq*c.m), c.d*c.hq, c.m)
				run(t, New(testPool, Options{Reference: reference}), &graph.Op{Kind: graph.Attention, Name: "attn", Dst: dst,
					Src:    []*graph.Tensor{f32Tensor("q", q, c.d, c.hq, c.m), kw, vw},
					Params: graph.Params{NPast: c.past, HeadsKV: c.hkv, HeadDim: c.d, Causal: true}})
				closeTo(t, dst.F32, loopAttention(q, kc, vc, c.d, c.hq, c.hkv, c.m, c.past, c.ctx), 1e-5)
			})
		}
	}
	t.Run("a cache of another type is refused by name", func(t *testing.T) {
		kt := &graph.Tensor{Name: "k", Type: tensor.Q8_0, Layout: tensor.Plain, Ne: [4]int{32, 2, 1, 1}, Data: make([]byte, 68)}
		vt := f32Tensor("v", make([]float32, 64), 2, 32, 1)
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.Attention, Name: "attn",
			Dst:    f32Tensor("dst", make([]float32, 32), 32, 1),
			Src:    []*graph.Tensor{f32Tensor("q", make([]float32, 32), 32, 1, 1), kt, vt},
			Params: graph.Params{NPast: 1, HeadsKV: 1, HeadDim: 32, Causal: true}})
		if err == nil || !strings.Contains(err.Error(), "keeps f32 and f16 caches") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestStoreKVRoundsIntoAnF16Cache(t *testing.T) {
	const d, h, m, ctx, past = 4, 3, 2, 6, 3
	x := randF32(rand.New(rand.NewPCG(9, 9)), d*h*m)
	for _, tr := range []bool{false, true} {
		ne := []int{d, ctx, h}
		if tr {
			ne = []int{ctx, d, h}
		}
		cache, _ := f16Cache("cache", make([]float32, d*h*ctx), ne...)
		win := &graph.Tensor{Name: "cache", Type: tensor.F16, Ne: [4]int{d, m, h, 1}, Data: cache.Data, ViewSrc: cache}
		run(t, New(testPool, Options{}), &graph.Op{Kind: graph.StoreKV, Name: "store", Dst: win,
			Src: []*graph.Tensor{f32Tensor("x", x, d, h, m)}, Params: graph.Params{NPast: past, Transposed: tr}})
		written := 0
		for tok := 0; tok < m; tok++ {
			for g := 0; g < h; g++ {
				for i := 0; i < d; i++ {
					at := (g*ctx+past+tok)*d + i
					if tr {
						at = (g*d+i)*ctx + past + tok
					}
					got := uint16(cache.Data[2*at]) | uint16(cache.Data[2*at+1])<<8
					if want := tensor.F32ToF16(x[(tok*h+g)*d+i]); got != want {
						t.Fatalf("transposed=%v token %d head %d dim %d: cache has %#04x, want %#04x", tr, tok, g, i, got, want)
					}
					written++
				}
			}
		}
		nonzero := 0
		for i := 0; i < len(cache.Data); i += 2 {
			if cache.Data[i] != 0 || cache.Data[i+1] != 0 {
				nonzero++
			}
		}
		if nonzero != written {
			t.Fatalf("transposed=%v: %d entries nonzero, want the %d written", tr, nonzero, written)
		}
	}
}
