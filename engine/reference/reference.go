// Package reference is TileLab's numerical oracle: a float32 forward pass for llama, qwen2, qwen3 and qwen3moe
// models, built with GoMLX on its pure-Go backend (simplego). It reads the GGUF file itself — hyperparameters
// from metadata with llama.cpp's keys and defaults, every weight dequantized to float32 with tensor.Dequantize —
// and shares no code with engine/model, so agreement between the two means something.
//
// The whole sequence is processed at once (no KV cache): RMSNorm, RoPE (normal for llama, NeoX for qwen*),
// grouped-query causal attention, QK-norm (qwen3, qwen3moe), SwiGLU, and for qwen3moe the router: a softmax over
// the experts in GoMLX, the top-k choice in plain Go (the pure-Go backend has no sort), the chosen weights
// renormalised, and the chosen experts run in GoMLX.
package reference

import (
	"fmt"
	"math"
	"sort"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	mlx "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"tilelab/engine/gguf"
	"tilelab/engine/tensor"
)

// Options changes what Forward computes.
type Options struct {
	// AllPositions returns logits for every position; otherwise only the last position's.
	AllPositions bool
	// QuantizeActivations rounds the activations entering each matmul with a Q4_0 or Q8_0 weight through Q8_0
	// (32-element blocks, an fp16 scale, round-half-away-from-zero), as ggml's CPU kernels and TileLab's fast
	// kernels do, so their results can be checked against a reference that makes the same approximation.
	QuantizeActivations bool
}

// Logits returns the logits of the last position of tokens for the model in the GGUF file at path.
func Logits(path string, tokens []int32) ([]float32, error) {
	out, err := Forward(path, tokens, Options{})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Forward runs the model in the GGUF file at path over tokens (positions 0, 1, ...) and returns logits: one
// row per position with AllPositions, else one row for the last position.
func Forward(path string, tokens []int32, o Options) ([][]float32, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ForwardFile(f, tokens, o)
}

// ForwardFile is Forward on an open GGUF file.
func ForwardFile(f *gguf.File, tokens []int32, o Options) (rows [][]float32, err error) {
	h, err := readHParams(f)
	if err != nil {
		return nil, err
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("reference: no tokens")
	}
	backend, err := newBackend()
	if err != nil {
		return nil, fmt.Errorf("reference: GoMLX simplego backend: %w", err)
	}
	defer backend.Finalize()
	// GoMLX reports graph-building mistakes by panicking; turn them into errors naming the oracle.
	defer func() {
		if r := recover(); r != nil {
			rows, err = nil, fmt.Errorf("reference: GoMLX: %v", r)
		}
	}()
	r := &runner{f: f, h: h, o: o, backend: backend, execs: map[string]*mlx.Exec{}}
	defer r.finalize()
	return r.forward(tokens)
}

// newBackend starts GoMLX's pure-Go backend with its ops run one at a time: its parallel op scheduler reads
// use counts without the lock it writes them under (a data race that go test -race reports in simplego/exec.go),
// and the oracle must be race-free. Running ops in sequence costs little (this package's tests: 2.8 s before,
// 3.1 s after).
func newBackend() (backends.Backend, error) { return simplego.New("ops_sequential") }

// runner holds one forward pass's state: the file, the compiled GoMLX executables (reused across layers,
// since every layer has the same shapes) and the options.
type runner struct {
	f       *gguf.File
	h       hparams
	o       Options
	backend backends.Backend
	execs   map[string]*mlx.Exec
}

func (r *runner) finalize() {
	for _, e := range r.execs {
		e.Finalize()
	}
}

// exec compiles fn once per key and runs it.
func (r *runner) exec(key string, fn func([]*mlx.Node) []*mlx.Node, args ...any) ([]*tensors.Tensor, error) {
	e, ok := r.execs[key]
	if !ok {
		var err error
		if e, err = mlx.NewExec(r.backend, fn); err != nil {
			return nil, fmt.Errorf("reference: building %s: %w", key, err)
		}
		r.execs[key] = e
	}
	out, err := e.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("reference: running %s: %w", key, err)
	}
	return out, nil
}

// weight dequantizes a tensor to float32 and checks its shape against want (ggml order: want[0] is the row
// length). The GoMLX tensor has the dimensions reversed: (..., rows, row length). Missing tensors are an error
// unless optional, when the result is nil.
func (r *runner) weight(name string, optional bool, want ...int) (*tensors.Tensor, tensor.DType, error) {
	ti, ok := r.f.Tensor(name)
	if !ok {
		if optional {
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("reference: %s model has no tensor %s", r.h.arch, name)
	}
	for i := 0; i < 4; i++ {
		w := 1
		if i < len(want) {
			w = want[i]
		}
		if ti.Ne[i] != w {
			return nil, 0, fmt.Errorf("reference: tensor %s has shape %v, want %v", name, ti.Ne, want)
		}
	}
	data := r.f.TensorData(ti)
	if data == nil {
		return nil, 0, fmt.Errorf("reference: tensor %s has no data", name)
	}
	vals := make([]float32, ti.Elems())
	if err := tensor.Dequantize(ti.Type, data, vals); err != nil {
		return nil, 0, fmt.Errorf("reference: tensor %s: %w", name, err)
	}
	dims := make([]int, len(want))
	for i := range want {
		dims[len(want)-1-i] = want[i]
	}
	return tensors.FromFlatDataAndDimensions(vals, dims...), ti.Type, nil
}

// embed dequantizes the embedding rows of the tokens.
func (r *runner) embed(tokens []int32) (*tensors.Tensor, int, error) {
	ti, ok := r.f.Tensor("token_embd.weight")
	if !ok {
		return nil, 0, fmt.Errorf("reference: %s model has no tensor token_embd.weight", r.h.arch)
	}
	d, nVocab := ti.Ne[0], ti.Ne[1]
	if d != r.h.nEmbd || ti.Ne[2] != 1 || ti.Ne[3] != 1 {
		return nil, 0, fmt.Errorf("reference: token_embd.weight has shape %v, want [%d n_vocab 1 1]", ti.Ne, r.h.nEmbd)
	}
	data := r.f.TensorData(ti)
	rowBytes := ti.Type.RowBytes(d)
	if rowBytes == 0 || len(data) < rowBytes*nVocab {
		return nil, 0, fmt.Errorf("reference: token_embd.weight of type %s has %d bytes, too few for %v", ti.Type, len(data), ti.Ne)
	}
	x := make([]float32, len(tokens)*d)
	for i, id := range tokens {
		if id < 0 || int(id) >= nVocab {
			return nil, 0, fmt.Errorf("reference: token %d at position %d is outside the vocabulary of %d", id, i, nVocab)
		}
		if err := tensor.Dequantize(ti.Type, data[int(id)*rowBytes:(int(id)+1)*rowBytes], x[i*d:(i+1)*d]); err != nil {
			return nil, 0, fmt.Errorf("reference: token_embd.weight: %w", err)
		}
	}
	return tensors.FromFlatDataAndDimensions(x, len(tokens), d), nVocab, nil
}

// ropeTables computes cos and sin of every position's angles in float64:
// angle(p, i) = p·scale·base^(-2i/nRot) / factor[i], with the per-frequency factors of rope_freqs.weight where
// the file has them (Llama 3.1's long-context scaling), else 1.
func (r *runner) ropeTables(n int) (cos, sin *tensors.Tensor, err error) {
	half := r.h.nRot / 2
	factors := make([]float32, half)
	for i := range factors {
		factors[i] = 1
	}
	if ti, ok := r.f.Tensor("rope_freqs.weight"); ok {
		if ti.Ne != [4]int{half, 1, 1, 1} {
			return nil, nil, fmt.Errorf("reference: tensor rope_freqs.weight has shape %v, want [%d 1 1 1]", ti.Ne, half)
		}
		data := r.f.TensorData(ti)
		if data == nil {
			return nil, nil, fmt.Errorf("reference: tensor rope_freqs.weight has no data")
		}
		if err := tensor.Dequantize(ti.Type, data, factors); err != nil {
			return nil, nil, fmt.Errorf("reference: tensor rope_freqs.weight: %w", err)
		}
	}
	c := make([]float32, n*half)
	s := make([]float32, n*half)
	for p := 0; p < n; p++ {
		for i := 0; i < half; i++ {
			theta := float64(p) * r.h.ropeScale * math.Pow(r.h.ropeBase, -2*float64(i)/float64(r.h.nRot)) / float64(factors[i])
			c[p*half+i] = float32(math.Cos(theta))
			s[p*half+i] = float32(math.Sin(theta))
		}
	}
	return tensors.FromFlatDataAndDimensions(c, n, 1, half), tensors.FromFlatDataAndDimensions(s, n, 1, half), nil
}

func (r *runner) forward(tokens []int32) ([][]float32, error) {
	h := r.h
	n := len(tokens)
	x, nVocab, err := r.embed(tokens)
	if err != nil {
		return nil, err
	}
	cos, sin, err := r.ropeTables(n)
	if err != nil {
		return nil, err
	}
	mask := make([]float32, n*n)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			mask[i*n+j] = float32(math.Inf(-1))
		}
	}
	maskT := tensors.FromFlatDataAndDimensions(mask, 1, 1, n, n)

	for il := 0; il < h.nLayer; il++ {
		if x, err = r.attentionLayer(il, x, cos, sin, maskT); err != nil {
			return nil, err
		}
		if h.nExpert > 0 {
			x, err = r.moeLayer(il, x)
		} else {
			x, err = r.denseFFN(il, x)
		}
		if err != nil {
			return nil, err
		}
	}
	return r.output(x, n, nVocab)
}

// blk names a tensor of layer il.
func blk(il int, name string) string { return fmt.Sprintf("blk.%d.%s.weight", il, name) }

func (r *runner) attentionLayer(il int, x, cos, sin, mask *tensors.Tensor) (*tensors.Tensor, error) {
	h := r.h
	qDim, kDim, vDim := h.nHead*h.headDim, h.nHeadKV*h.headDim, h.nHeadKV*h.headDimV
	var args []any
	var types []tensor.DType
	var flags []bool // which optional inputs are present, in order: bq bk bv bo q_norm k_norm
	add := func(name string, optional bool, want ...int) error {
		w, typ, err := r.weight(name, optional, want...)
		if err != nil {
			return err
		}
		if optional {
			flags = append(flags, w != nil)
			if w == nil {
				return nil
			}
		}
		args = append(args, w)
		types = append(types, typ)
		return nil
	}
	bias := func(name string) string { return fmt.Sprintf("blk.%d.%s.bias", il, name) }
	for _, step := range []func() error{
		func() error { return add(blk(il, "attn_norm"), false, h.nEmbd) },
		func() error { return add(blk(il, "attn_q"), false, h.nEmbd, qDim) },
		func() error { return add(blk(il, "attn_k"), false, h.nEmbd, kDim) },
		func() error { return add(blk(il, "attn_v"), false, h.nEmbd, vDim) },
		func() error { return add(blk(il, "attn_output"), false, h.nHead*h.headDimV, h.nEmbd) },
		func() error { return add(bias("attn_q"), true, qDim) },
		func() error { return add(bias("attn_k"), true, kDim) },
		func() error { return add(bias("attn_v"), true, vDim) },
		func() error { return add(bias("attn_output"), true, h.nEmbd) },
		func() error { return add(blk(il, "attn_q_norm"), !h.qkNorm, h.headDim) },
		func() error { return add(blk(il, "attn_k_norm"), !h.qkNorm, h.headDim) },
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if h.qkNorm {
		flags = append(flags, true, true)
	}
	quant := r.quantFlags(types[1:5]) // wq wk wv wo
	key := fmt.Sprintf("attention%v%v", flags, quant)
	in := append([]any{x, cos, sin, mask}, args...)
	out, err := r.exec(key, func(a []*mlx.Node) []*mlx.Node {
		return []*mlx.Node{attention(h, flags, quant, a)}
	}, in...)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// quantFlags says, per weight type, whether activations entering that matmul are rounded through Q8_0.
func (r *runner) quantFlags(types []tensor.DType) []bool {
	q := make([]bool, len(types))
	for i, t := range types {
		q[i] = r.o.QuantizeActivations && (t == tensor.Q4_0 || t == tensor.Q8_0)
	}
	return q
}

// attention is one attention block: x + Wo·attn(RoPE(norm(Wq·n)), RoPE(norm(Wk·n)), Wv·n) with n = RMSNorm(x).
// a holds x, cos, sin, mask, attn_norm, wq, wk, wv, wo, then the optional inputs flags marks present.
func attention(h hparams, flags, quant []bool, a []*mlx.Node) *mlx.Node {
	x, cos, sin, mask := a[0], a[1], a[2], a[3]
	norm, wq, wk, wv, wo := a[4], a[5], a[6], a[7], a[8]
	rest := a[9:]
	opt := make([]*mlx.Node, len(flags))
	for i, present := range flags {
		if present {
			opt[i], rest = rest[0], rest[1:]
		}
	}
	bq, bk, bv, bo, qn, kn := opt[0], opt[1], opt[2], opt[3], opt[4], opt[5]
	n := x.Shape().Dimensions[0]
	g := h.nHead / h.nHeadKV

	xn := rmsNorm(x, norm, h.eps)
	q := mlx.Reshape(linear(xn, wq, bq, quant[0]), n, h.nHead, h.headDim)
	k := mlx.Reshape(linear(xn, wk, bk, quant[1]), n, h.nHeadKV, h.headDim)
	v := mlx.Reshape(linear(xn, wv, bv, quant[2]), n, h.nHeadKV, h.headDimV)
	if qn != nil {
		q = rmsNorm(q, qn, h.eps)
		k = rmsNorm(k, kn, h.eps)
	}
	q = rope(q, cos, sin, h)
	k = rope(k, cos, sin, h)

	// Query head j reads key/value head j / g, as ggml's broadcasting in mul_mat does.
	q = mlx.Reshape(q, n, h.nHeadKV, g, h.headDim)
	scores := mlx.Einsum("tkgd,skd->kgts", q, k)
	scores = mlx.MulScalar(scores, 1/math.Sqrt(float64(h.headDim)))
	scores = mlx.Add(scores, mask)
	p := mlx.Softmax(scores, -1)
	o := mlx.Einsum("kgts,skd->tkgd", p, v)
	o = mlx.Reshape(o, n, h.nHead*h.headDimV)
	return mlx.Add(x, linear(o, wo, bo, quant[3]))
}

// rmsNorm normalises the last axis: x / sqrt(mean(x²) + eps) · w.
func rmsNorm(x, w *mlx.Node, eps float64) *mlx.Node {
	ms := mlx.ReduceAndKeep(mlx.Square(x), mlx.ReduceMean, -1)
	if w.Rank() < x.Rank() {
		w = mlx.ExpandLeftToRank(w, x.Rank())
	}
	return mlx.Mul(mlx.Mul(x, mlx.Rsqrt(mlx.AddScalar(ms, eps))), w)
}

// linear is x·Wᵀ (+ b), W in ggml's layout (rows of length in), optionally with x rounded through Q8_0 first.
func linear(x, w, b *mlx.Node, quantize bool) *mlx.Node {
	if quantize {
		x = q8Round(x)
	}
	y := mlx.Einsum("ti,oi->to", x, w)
	if b != nil {
		y = mlx.Add(y, mlx.Reshape(b, 1, b.Shape().Dimensions[0]))
	}
	return y
}

// rope rotates the first nRot dimensions of each head of x [n, heads, headDim] by the position angles
// (cos, sin: [n, 1, nRot/2]): NeoX pairs dimension i with i+nRot/2, the original (llama) style pairs 2i with 2i+1.
func rope(x, cos, sin *mlx.Node, h hparams) *mlx.Node {
	dims := x.Shape().Dimensions
	n, heads, hd := dims[0], dims[1], dims[2]
	half := h.nRot / 2
	rot := mlx.Slice(x, mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(0, h.nRot))
	var x1, x2 *mlx.Node
	if h.neox {
		x1 = mlx.Slice(rot, mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(0, half))
		x2 = mlx.Slice(rot, mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(half, h.nRot))
	} else {
		pairs := mlx.Reshape(rot, n, heads, half, 2)
		x1 = mlx.Reshape(mlx.Slice(pairs, mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(0, 1)), n, heads, half)
		x2 = mlx.Reshape(mlx.Slice(pairs, mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(1, 2)), n, heads, half)
	}
	y1 := mlx.Sub(mlx.Mul(x1, cos), mlx.Mul(x2, sin))
	y2 := mlx.Add(mlx.Mul(x2, cos), mlx.Mul(x1, sin))
	var out *mlx.Node
	if h.neox {
		out = mlx.Concatenate([]*mlx.Node{y1, y2}, -1)
	} else {
		out = mlx.Reshape(mlx.Stack([]*mlx.Node{y1, y2}, -1), n, heads, h.nRot)
	}
	if h.nRot < hd {
		out = mlx.Concatenate([]*mlx.Node{out, mlx.Slice(x, mlx.AxisRange(), mlx.AxisRange(), mlx.AxisRange(h.nRot, hd))}, -1)
	}
	return out
}

// q8Round rounds x [..., k] through Q8_0 as ggml's quantize_row_q8_0 does: per block of 32, d = max|x|/127,
// q = round(x/d) (half away from zero, with the unrounded 1/d), and the value read back is q·fp16(d).
func q8Round(x *mlx.Node) *mlx.Node {
	dims := x.Shape().Dimensions
	k := dims[len(dims)-1]
	blocked := append(append([]int{}, dims[:len(dims)-1]...), k/32, 32)
	xb := mlx.Reshape(x, blocked...)
	amax := mlx.ReduceAndKeep(mlx.Abs(xb), mlx.ReduceMax, -1)
	d := mlx.DivScalar(amax, 127)
	zero := mlx.ZerosLike(d)
	id := mlx.Where(mlx.GreaterThan(d, zero), mlx.Reciprocal(mlx.Where(mlx.GreaterThan(d, zero), d, mlx.OnesLike(d))), zero)
	q := mlx.Round(mlx.Mul(xb, id))
	return mlx.Reshape(mlx.Mul(q, fp16Round(d)), dims...)
}

// fp16Round rounds positive float32 values to the nearest float16 (ties to even), as ggml's FP32_TO_FP16:
// normal halves keep 11 significant bits (Veltkamp split with 2^13+1), subnormal halves are multiples of 2^-24.
func fp16Round(d *mlx.Node) *mlx.Node {
	c := mlx.MulScalar(d, 8193)
	normal := mlx.Sub(c, mlx.Sub(c, d))
	sub := mlx.MulScalar(roundHalfEven(mlx.MulScalar(d, 1<<24)), 1.0/(1<<24))
	return mlx.Where(mlx.LessThan(d, mlx.MulScalar(mlx.OnesLike(d), 1.0/(1<<14))), sub, normal)
}

// roundHalfEven rounds to the nearest integer, ties to even (GoMLX's Round sends ties away from zero).
func roundHalfEven(x *mlx.Node) *mlx.Node {
	r := mlx.Round(x)
	tie := mlx.Equal(mlx.Abs(mlx.Sub(x, mlx.Floor(x))), mlx.MulScalar(mlx.OnesLike(x), 0.5))
	odd := mlx.NotEqual(mlx.Sub(r, mlx.MulScalar(mlx.Floor(mlx.MulScalar(r, 0.5)), 2)), mlx.ZerosLike(r))
	return mlx.Where(mlx.LogicalAnd(tie, odd), mlx.Sub(r, mlx.Sign(x)), r)
}

func (r *runner) denseFFN(il int, x *tensors.Tensor) (*tensors.Tensor, error) {
	h := r.h
	norm, _, err := r.weight(blk(il, "ffn_norm"), false, h.nEmbd)
	if err != nil {
		return nil, err
	}
	gate, tg, err := r.weight(blk(il, "ffn_gate"), false, h.nEmbd, h.nFF)
	if err != nil {
		return nil, err
	}
	up, tu, err := r.weight(blk(il, "ffn_up"), false, h.nEmbd, h.nFF)
	if err != nil {
		return nil, err
	}
	down, td, err := r.weight(blk(il, "ffn_down"), false, h.nFF, h.nEmbd)
	if err != nil {
		return nil, err
	}
	quant := r.quantFlags([]tensor.DType{tg, tu, td})
	out, err := r.exec(fmt.Sprintf("ffn%v", quant), func(a []*mlx.Node) []*mlx.Node {
		x, norm, gate, up, down := a[0], a[1], a[2], a[3], a[4]
		xn := rmsNorm(x, norm, h.eps)
		act := mlx.Mul(silu(linear(xn, gate, nil, quant[0])), linear(xn, up, nil, quant[1]))
		return []*mlx.Node{mlx.Add(x, linear(act, down, nil, quant[2]))}
	}, x, norm, gate, up, down)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func silu(x *mlx.Node) *mlx.Node { return mlx.Mul(x, mlx.Logistic(x)) }

// moeLayer runs a qwen3moe FFN: router probabilities in GoMLX, top-k in Go, then each chosen expert in GoMLX
// on the rows of the tokens that chose it, and the weighted sum with the residual in GoMLX. Go only moves rows:
// it gathers each expert's input rows and places each output row at its (token, slot).
func (r *runner) moeLayer(il int, x *tensors.Tensor) (*tensors.Tensor, error) {
	h := r.h
	n := x.Shape().Dimensions[0]
	norm, _, err := r.weight(blk(il, "ffn_norm"), false, h.nEmbd)
	if err != nil {
		return nil, err
	}
	router, tr, err := r.weight(blk(il, "ffn_gate_inp"), false, h.nEmbd, h.nExpert)
	if err != nil {
		return nil, err
	}
	rq := r.quantFlags([]tensor.DType{tr})[0]
	out, err := r.exec(fmt.Sprintf("router%v", rq), func(a []*mlx.Node) []*mlx.Node {
		xn := rmsNorm(a[0], a[1], h.eps)
		return []*mlx.Node{xn, mlx.Softmax(linear(xn, a[2], nil, rq), -1)}
	}, x, norm, router)
	if err != nil {
		return nil, err
	}
	xn := tensors.MustCopyFlatData[float32](out[0])
	probs := tensors.MustCopyFlatData[float32](out[1])

	// Each token's experts and weights; for each expert, the (token, slot) pairs that chose it.
	k := h.nExpertUsed
	weights := make([]float32, n*k)
	users := map[int][]int{} // expert -> token*k + slot
	for t := 0; t < n; t++ {
		row := probs[t*h.nExpert : (t+1)*h.nExpert]
		chosen := topK(row, k)
		var sum float32
		for _, e := range chosen {
			sum += row[e]
		}
		for slot, e := range chosen {
			w := row[e]
			if h.normTopK {
				w /= sum
			}
			weights[t*k+slot] = w
			users[e] = append(users[e], t*k+slot)
		}
	}
	experts := make([]int, 0, len(users))
	for e := range users {
		experts = append(experts, e)
	}
	sort.Ints(experts)

	d := h.nEmbd
	ys := make([]float32, n*k*d) // expert outputs by (token, slot)
	for _, e := range experts {
		gate, tg, err := r.expertWeights(il, "ffn_gate_exps", e, h.nEmbd, h.nFFExp)
		if err != nil {
			return nil, err
		}
		up, tu, err := r.expertWeights(il, "ffn_up_exps", e, h.nEmbd, h.nFFExp)
		if err != nil {
			return nil, err
		}
		down, td, err := r.expertWeights(il, "ffn_down_exps", e, h.nFFExp, h.nEmbd)
		if err != nil {
			return nil, err
		}
		// Pad the gathered rows to a power of two so that few shapes get compiled; zero rows stay zero.
		rows := users[e]
		padded := 1
		for padded < len(rows) {
			padded *= 2
		}
		in := make([]float32, padded*d)
		for i, ts := range rows {
			t := ts / k
			copy(in[i*d:(i+1)*d], xn[t*d:(t+1)*d])
		}
		quant := r.quantFlags([]tensor.DType{tg, tu, td})
		out, err := r.exec(fmt.Sprintf("expert%v", quant), func(a []*mlx.Node) []*mlx.Node {
			in, gate, up, down := a[0], a[1], a[2], a[3]
			act := mlx.Mul(silu(linear(in, gate, nil, quant[0])), linear(in, up, nil, quant[1]))
			return []*mlx.Node{linear(act, down, nil, quant[2])}
		}, tensors.FromFlatDataAndDimensions(in, padded, d), gate, up, down)
		if err != nil {
			return nil, err
		}
		y := tensors.MustCopyFlatData[float32](out[0])
		for i, ts := range rows {
			copy(ys[ts*d:(ts+1)*d], y[i*d:(i+1)*d])
		}
	}
	out, err = r.exec("moe-sum", func(a []*mlx.Node) []*mlx.Node {
		return []*mlx.Node{mlx.Add(a[0], mlx.Einsum("tsd,ts->td", a[1], a[2]))}
	}, x, tensors.FromFlatDataAndDimensions(ys, n, k, d), tensors.FromFlatDataAndDimensions(weights, n, k))
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// topK returns the indices of the k largest values, largest first (lower index first among equals).
func topK(row []float32, k int) []int {
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	return idx[:k]
}

// expertWeights dequantizes expert e of a stacked expert tensor (ggml shape [in, out, n_expert]) into a GoMLX
// tensor [out, in].
func (r *runner) expertWeights(il int, name string, e, in, out int) (*tensors.Tensor, tensor.DType, error) {
	full := blk(il, name)
	ti, ok := r.f.Tensor(full)
	if !ok {
		return nil, 0, fmt.Errorf("reference: %s model has no tensor %s", r.h.arch, full)
	}
	if ti.Ne != [4]int{in, out, r.h.nExpert, 1} {
		return nil, 0, fmt.Errorf("reference: tensor %s has shape %v, want [%d %d %d 1]", full, ti.Ne, in, out, r.h.nExpert)
	}
	data := r.f.TensorData(ti)
	per := ti.Type.RowBytes(in) * out
	if per == 0 || len(data) < per*r.h.nExpert {
		return nil, 0, fmt.Errorf("reference: tensor %s of type %s has %d bytes, too few for %v", full, ti.Type, len(data), ti.Ne)
	}
	vals := make([]float32, in*out)
	if err := tensor.Dequantize(ti.Type, data[e*per:(e+1)*per], vals); err != nil {
		return nil, 0, fmt.Errorf("reference: tensor %s: %w", full, err)
	}
	return tensors.FromFlatDataAndDimensions(vals, out, in), ti.Type, nil
}

// outputChunk is how many vocabulary rows of the output matrix are dequantized and multiplied at a time, so
// that a 151936 × 4096 output matrix never sits in memory whole as float32.
const outputChunk = 16384

// output applies the final norm and the output projection (tied to token_embd when output.weight is absent),
// a chunk of vocabulary rows at a time.
func (r *runner) output(x *tensors.Tensor, n, nVocab int) ([][]float32, error) {
	h := r.h
	norm, _, err := r.weight("output_norm.weight", false, h.nEmbd)
	if err != nil {
		return nil, err
	}
	name := "output.weight"
	if _, ok := r.f.Tensor(name); !ok {
		name = "token_embd.weight"
	}
	ti, _ := r.f.Tensor(name)
	if ti.Ne != [4]int{h.nEmbd, nVocab, 1, 1} {
		return nil, fmt.Errorf("reference: tensor %s has shape %v, want [%d %d 1 1]", name, ti.Ne, h.nEmbd, nVocab)
	}
	data := r.f.TensorData(ti)
	rowBytes := ti.Type.RowBytes(h.nEmbd)
	if rowBytes == 0 || len(data) < rowBytes*nVocab {
		return nil, fmt.Errorf("reference: tensor %s of type %s has %d bytes, too few for %v", name, ti.Type, len(data), ti.Ne)
	}
	first := n - 1
	if r.o.AllPositions {
		first = 0
	}
	out, err := r.exec("final-norm", func(a []*mlx.Node) []*mlx.Node {
		x := mlx.Slice(a[0], mlx.AxisRange(first, n), mlx.AxisRange())
		return []*mlx.Node{rmsNorm(x, a[1], h.eps)}
	}, x, norm)
	if err != nil {
		return nil, err
	}
	xn := out[0]
	quant := r.quantFlags([]tensor.DType{ti.Type})[0]
	rows := make([][]float32, n-first)
	for i := range rows {
		rows[i] = make([]float32, nVocab)
	}
	for v0 := 0; v0 < nVocab; v0 += outputChunk {
		v1 := min(nVocab, v0+outputChunk)
		vals := make([]float32, (v1-v0)*h.nEmbd)
		if err := tensor.Dequantize(ti.Type, data[v0*rowBytes:v1*rowBytes], vals); err != nil {
			return nil, fmt.Errorf("reference: tensor %s: %w", name, err)
		}
		out, err := r.exec(fmt.Sprintf("output%v", quant), func(a []*mlx.Node) []*mlx.Node {
			return []*mlx.Node{linear(a[0], a[1], nil, quant)}
		}, xn, tensors.FromFlatDataAndDimensions(vals, v1-v0, h.nEmbd))
		if err != nil {
			return nil, err
		}
		flat := tensors.MustCopyFlatData[float32](out[0])
		for i := range rows {
			copy(rows[i][v0:v1], flat[i*(v1-v0):(i+1)*(v1-v0)])
		}
	}
	return rows, nil
}
