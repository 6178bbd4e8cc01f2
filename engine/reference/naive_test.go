package reference

import (
	"fmt"
	"io"
	"math"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"tilelab/engine/gguf"
	"tilelab/engine/tensor"
)

// toyModel is a small random model written as GGUF, with its weights kept in float64 for naiveForward.
type toyModel struct {
	arch                  string
	layers, embd, vocab   int
	heads, kvHeads, hd    int
	nRot, ff              int
	experts, used, expFF  int
	bias, tied, qkNorm    bool
	ropeBase, eps         float64
	weights               map[string][]float64 // by tensor name, ggml row-major (rows of ne[0])
	shapes                map[string][]int
	order                 []string
	matrixType            tensor.DType
	extraKV               []gguf.KV
	skipTensor, badTensor string // for error tests: leave a tensor out, or give it a wrong shape
	normTopK              bool
	neox                  bool
	writeKeyLength        bool
	gain                  float64 // scales the layers' matrices and biases (0 means 1): small gains keep the model calm
	ropeFactors           bool    // write rope_freqs.weight (Llama 3.1 style per-frequency divisors)
}

func (m *toyModel) add(rng *rand.Rand, name string, std, mean float64, ne ...int) {
	if m.gain != 0 && strings.HasPrefix(name, "blk.") && mean == 0 {
		std *= m.gain
	}
	n := 1
	for _, d := range ne {
		n *= d
	}
	w := make([]float64, n)
	for i := range w {
		w[i] = mean + std*rng.NormFloat64()
	}
	m.weights[name] = w
	m.shapes[name] = ne
	m.order = append(m.order, name)
}

// build fills the weights with random values large enough that every layer visibly changes the logits.
func (m *toyModel) build(seed int64) {
	rng := rand.New(rand.NewSource(seed))
	m.weights, m.shapes = map[string][]float64{}, map[string][]int{}
	m.add(rng, "token_embd.weight", 1, 0, m.embd, m.vocab)
	if !m.tied {
		m.add(rng, "output.weight", 0.1, 0, m.embd, m.vocab)
	}
	m.add(rng, "output_norm.weight", 0.1, 1, m.embd)
	if m.ropeFactors {
		m.add(rng, "rope_freqs.weight", 2, 4, m.nRot/2)
	}
	q, kv := m.heads*m.hd, m.kvHeads*m.hd
	for l := 0; l < m.layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		m.add(rng, p+"attn_norm.weight", 0.1, 1, m.embd)
		m.add(rng, p+"attn_q.weight", 0.2, 0, m.embd, q)
		m.add(rng, p+"attn_k.weight", 0.2, 0, m.embd, kv)
		m.add(rng, p+"attn_v.weight", 0.2, 0, m.embd, kv)
		m.add(rng, p+"attn_output.weight", 0.2, 0, q, m.embd)
		if m.bias {
			m.add(rng, p+"attn_q.bias", 0.5, 0, q)
			m.add(rng, p+"attn_k.bias", 0.5, 0, kv)
			m.add(rng, p+"attn_v.bias", 0.5, 0, kv)
		}
		if m.qkNorm {
			m.add(rng, p+"attn_q_norm.weight", 0.1, 1, m.hd)
			m.add(rng, p+"attn_k_norm.weight", 0.1, 1, m.hd)
		}
		m.add(rng, p+"ffn_norm.weight", 0.1, 1, m.embd)
		if m.experts > 0 {
			m.add(rng, p+"ffn_gate_inp.weight", 0.5, 0, m.embd, m.experts)
			m.add(rng, p+"ffn_gate_exps.weight", 0.2, 0, m.embd, m.expFF, m.experts)
			m.add(rng, p+"ffn_up_exps.weight", 0.2, 0, m.embd, m.expFF, m.experts)
			m.add(rng, p+"ffn_down_exps.weight", 0.2, 0, m.expFF, m.embd, m.experts)
		} else {
			m.add(rng, p+"ffn_gate.weight", 0.2, 0, m.embd, m.ff)
			m.add(rng, p+"ffn_up.weight", 0.2, 0, m.embd, m.ff)
			m.add(rng, p+"ffn_down.weight", 0.2, 0, m.ff, m.embd)
		}
	}
}

// write stores the model as GGUF. Matrices take matrixType; the values naiveForward uses are read back through
// tensor.Dequantize, so both sides see the same weights.
func (m *toyModel) write(t *testing.T, path string) {
	t.Helper()
	a := m.arch
	u := func(v int) gguf.Value { return gguf.Uint32(uint32(v)) }
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.Str(a)},
		{Key: a + ".block_count", Value: u(m.layers)},
		{Key: a + ".embedding_length", Value: u(m.embd)},
		{Key: a + ".feed_forward_length", Value: u(m.ff)},
		{Key: a + ".attention.head_count", Value: u(m.heads)},
		{Key: a + ".attention.head_count_kv", Value: u(m.kvHeads)},
		{Key: a + ".rope.dimension_count", Value: u(m.nRot)},
		{Key: a + ".rope.freq_base", Value: gguf.Float32(float32(m.ropeBase))},
		{Key: a + ".attention.layer_norm_rms_epsilon", Value: gguf.Float32(float32(m.eps))},
	}
	if m.writeKeyLength {
		kv = append(kv, gguf.KV{Key: a + ".attention.key_length", Value: u(m.hd)},
			gguf.KV{Key: a + ".attention.value_length", Value: u(m.hd)})
	}
	if m.experts > 0 {
		kv = append(kv, gguf.KV{Key: a + ".expert_count", Value: u(m.experts)},
			gguf.KV{Key: a + ".expert_used_count", Value: u(m.used)},
			gguf.KV{Key: a + ".expert_feed_forward_length", Value: u(m.expFF)})
	}
	kv = append(kv, m.extraKV...)
	var infos []gguf.TensorInfo
	types := map[string]tensor.DType{}
	for _, name := range m.order {
		if name == m.skipTensor {
			continue
		}
		ne := m.shapes[name]
		typ := tensor.F32
		if len(ne) >= 2 && m.matrixType != 0 && ne[0]%32 == 0 {
			typ = m.matrixType
		}
		types[name] = typ
		shape := ne
		if name == m.badTensor {
			shape = append([]int{ne[0] + 32}, ne[1:]...)
			m.weights[name] = append(m.weights[name], make([]float64, 32*len(m.weights[name])/ne[0])...)
		}
		infos = append(infos, gguf.NewTensorInfo(name, typ, shape...))
	}
	f, err := gguf.NewFile(kv, infos)
	if err != nil {
		t.Fatal(err)
	}
	err = gguf.WriteFile(path, f, func(ti *gguf.TensorInfo, w io.Writer) error {
		src := m.weights[ti.Name]
		vals := make([]float32, len(src))
		for i, v := range src {
			vals[i] = float32(v)
		}
		b := make([]byte, ti.Size)
		if err := tensor.Quantize(ti.Type, vals, b); err != nil {
			return err
		}
		// Keep what the file holds, so the naive pass uses the same (possibly quantized) values.
		back := make([]float32, len(vals))
		if err := tensor.Dequantize(ti.Type, b, back); err != nil {
			return err
		}
		for i, v := range back {
			src[i] = float64(v)
		}
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// naiveForward is a direct float64 transcription of llama.cpp's llama / qwen2 / qwen3 / qwen3moe graphs, one
// token and one head at a time, used to check the GoMLX oracle on models no other tool has run.
func (m *toyModel) naiveForward(tokens []int32) [][]float64 {
	w := m.weights
	n := len(tokens)
	mat := func(name string, x []float64, in, out int) []float64 { // y = W x, W rows of length in
		y := make([]float64, out)
		for o := 0; o < out; o++ {
			row := w[name][o*in : (o+1)*in]
			for i, v := range row {
				y[o] += v * x[i]
			}
		}
		if b, ok := w[strings.TrimSuffix(name, ".weight")+".bias"]; ok {
			for o := range y {
				y[o] += b[o]
			}
		}
		return y
	}
	rms := func(x, g []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		s := 1 / math.Sqrt(ss/float64(len(x))+m.eps)
		y := make([]float64, len(x))
		for i := range x {
			y[i] = x[i] * s * g[i]
		}
		return y
	}
	rope := func(x []float64, pos int) {
		for i := 0; i < m.nRot/2; i++ {
			theta := float64(pos) * math.Pow(m.ropeBase, -2*float64(i)/float64(m.nRot))
			if f, ok := w["rope_freqs.weight"]; ok {
				theta /= f[i]
			}
			c, s := math.Cos(theta), math.Sin(theta)
			a, b := 2*i, 2*i+1
			if m.neox {
				a, b = i, i+m.nRot/2
			}
			x[a], x[b] = x[a]*c-x[b]*s, x[b]*c+x[a]*s
		}
	}
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	x := make([][]float64, n)
	for t, id := range tokens {
		x[t] = append([]float64(nil), w["token_embd.weight"][int(id)*m.embd:(int(id)+1)*m.embd]...)
	}
	for l := 0; l < m.layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		qs, ks, vs := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for t := 0; t < n; t++ {
			xn := rms(x[t], w[p+"attn_norm.weight"])
			qs[t] = mat(p+"attn_q.weight", xn, m.embd, m.heads*m.hd)
			ks[t] = mat(p+"attn_k.weight", xn, m.embd, m.kvHeads*m.hd)
			vs[t] = mat(p+"attn_v.weight", xn, m.embd, m.kvHeads*m.hd)
			for h := 0; h < m.heads; h++ {
				q := qs[t][h*m.hd : (h+1)*m.hd]
				if m.qkNorm {
					copy(q, rms(q, w[p+"attn_q_norm.weight"]))
				}
				rope(q, t)
			}
			for h := 0; h < m.kvHeads; h++ {
				k := ks[t][h*m.hd : (h+1)*m.hd]
				if m.qkNorm {
					copy(k, rms(k, w[p+"attn_k_norm.weight"]))
				}
				rope(k, t)
			}
		}
		for t := 0; t < n; t++ {
			o := make([]float64, m.heads*m.hd)
			for h := 0; h < m.heads; h++ {
				kvh := h / (m.heads / m.kvHeads)
				q := qs[t][h*m.hd : (h+1)*m.hd]
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := 0; s <= t; s++ {
					for d := 0; d < m.hd; d++ {
						sc[s] += q[d] * ks[s][kvh*m.hd+d]
					}
					sc[s] /= math.Sqrt(float64(m.hd))
					mx = math.Max(mx, sc[s])
				}
				var sum float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					sum += sc[s]
				}
				for s := range sc {
					for d := 0; d < m.hd; d++ {
						o[h*m.hd+d] += sc[s] / sum * vs[s][kvh*m.hd+d]
					}
				}
			}
			out := mat(p+"attn_output.weight", o, m.heads*m.hd, m.embd)
			for i := range out {
				x[t][i] += out[i]
			}
			xn := rms(x[t], w[p+"ffn_norm.weight"])
			var ffn []float64
			if m.experts == 0 {
				g, u := mat(p+"ffn_gate.weight", xn, m.embd, m.ff), mat(p+"ffn_up.weight", xn, m.embd, m.ff)
				for i := range g {
					g[i] = silu(g[i]) * u[i]
				}
				ffn = mat(p+"ffn_down.weight", g, m.ff, m.embd)
			} else {
				logits := mat(p+"ffn_gate_inp.weight", xn, m.embd, m.experts)
				mx := math.Inf(-1)
				for _, v := range logits {
					mx = math.Max(mx, v)
				}
				var sum float64
				probs := make([]float64, m.experts)
				for e, v := range logits {
					probs[e] = math.Exp(v - mx)
					sum += probs[e]
				}
				idx := make([]int, m.experts)
				for e := range idx {
					probs[e] /= sum
					idx[e] = e
				}
				sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
				var wsum float64
				for _, e := range idx[:m.used] {
					wsum += probs[e]
				}
				ffn = make([]float64, m.embd)
				for _, e := range idx[:m.used] {
					wt := probs[e]
					if m.normTopK {
						wt /= wsum
					}
					sub := func(name string, in, out int) []float64 {
						full := w[p+name]
						return full[e*in*out : (e+1)*in*out]
					}
					g := make([]float64, m.expFF)
					u := make([]float64, m.expFF)
					gw, uw := sub("ffn_gate_exps.weight", m.embd, m.expFF), sub("ffn_up_exps.weight", m.embd, m.expFF)
					for j := 0; j < m.expFF; j++ {
						for i := 0; i < m.embd; i++ {
							g[j] += gw[j*m.embd+i] * xn[i]
							u[j] += uw[j*m.embd+i] * xn[i]
						}
						g[j] = silu(g[j]) * u[j]
					}
					dw := sub("ffn_down_exps.weight", m.expFF, m.embd)
					for i := 0; i < m.embd; i++ {
						var s float64
						for j := 0; j < m.expFF; j++ {
							s += dw[i*m.expFF+j] * g[j]
						}
						ffn[i] += wt * s
					}
				}
			}
			for i := range ffn {
				x[t][i] += ffn[i]
			}
		}
	}
	out := "output.weight"
	if m.tied {
		out = "token_embd.weight"
	}
	rows := make([][]float64, n)
	for t := range rows {
		rows[t] = mat(out, rms(x[t], w["output_norm.weight"]), m.embd, m.vocab)
	}
	return rows
}

func toyLlama() *toyModel {
	return &toyModel{arch: "llama", layers: 2, embd: 64, vocab: 40, heads: 4, kvHeads: 2, hd: 16, nRot: 16, ff: 96,
		tied: true, ropeBase: 10000, eps: 1e-5}
}

func toyQwen2() *toyModel {
	return &toyModel{arch: "qwen2", layers: 2, embd: 64, vocab: 40, heads: 4, kvHeads: 1, hd: 16, nRot: 8, ff: 64,
		bias: true, ropeBase: 1e6, eps: 1e-6, neox: true}
}

func toyQwen3() *toyModel {
	return &toyModel{arch: "qwen3", layers: 2, embd: 64, vocab: 40, heads: 4, kvHeads: 2, hd: 32, nRot: 32, ff: 64,
		qkNorm: true, ropeBase: 1e6, eps: 1e-6, neox: true, writeKeyLength: true}
}

func toyQwen3MoE() *toyModel {
	return &toyModel{arch: "qwen3moe", layers: 2, embd: 64, vocab: 40, heads: 4, kvHeads: 2, hd: 16, nRot: 16, ff: 96,
		experts: 4, used: 2, expFF: 32, qkNorm: true, ropeBase: 1e6, eps: 1e-6, neox: true, normTopK: true}
}

func TestOracleMatchesANaiveTranscription(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		m    *toyModel
		typ  tensor.DType
	}{
		{"llama with normal RoPE, GQA 2:1 and a tied output", toyLlama(), tensor.F32},
		{"qwen2 with QKV biases, partial NeoX RoPE and one KV head", toyQwen2(), tensor.F32},
		{"qwen3 with QK-norm and explicit head size", toyQwen3(), tensor.F32},
		{"qwen3moe with renormalised top-2 of 4 experts", toyQwen3MoE(), tensor.F32},
		{"qwen3moe with Q8_0 matrices", toyQwen3MoE(), tensor.Q8_0},
		{"llama with Q4_0 matrices", toyLlama(), tensor.Q4_0},
		{"llama with rope_freqs frequency factors", func() *toyModel { m := toyLlama(); m.ropeFactors = true; return m }(), tensor.F32},
	}
	tokens := []int32{3, 17, 0, 39, 8, 8, 21}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.m.matrixType = c.typ
			c.m.build(int64(100 + i))
			path := filepath.Join(dir, fmt.Sprintf("toy%d.gguf", i))
			c.m.write(t, path)
			want := c.m.naiveForward(tokens)
			got, err := Forward(path, tokens, Options{AllPositions: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tokens) {
				t.Fatalf("%d rows of logits, want %d", len(got), len(tokens))
			}
			for p := range want {
				w32 := make([]float32, len(want[p]))
				for j, v := range want[p] {
					w32[j] = float32(v)
				}
				if _, rel := compare(got[p], w32); rel > 2e-5 || math.IsNaN(rel) {
					t.Errorf("position %d: relative L2 error %.3g against the float64 transcription", p, rel)
				}
			}
			last, err := Logits(path, tokens)
			if err != nil {
				t.Fatal(err)
			}
			if _, rel := compare(last, got[len(got)-1]); rel != 0 {
				t.Errorf("Logits differs from the last row of Forward by %.3g", rel)
			}
		})
	}
}

func TestBadInputIsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, edit func(m *toyModel)) string {
		m := toyLlama()
		m.build(1)
		edit(m)
		path := filepath.Join(dir, name+".gguf")
		m.write(t, path)
		return path
	}
	good := write("good", func(*toyModel) {})
	cases := []struct {
		name   string
		path   string
		tokens []int32
		want   string
	}{
		{"a missing file", filepath.Join(dir, "nope.gguf"), []int32{1}, "no such file"},
		{"no tokens", good, nil, "no tokens"},
		{"a token outside the vocabulary", good, []int32{1, 40}, "token 40 at position 1 is outside the vocabulary of 40"},
		{"a negative token", good, []int32{-1}, "token -1 at position 0"},
		{"an unknown architecture", write("gpt2", func(m *toyModel) { m.arch = "gpt2" }), []int32{1}, `architecture "gpt2" is not supported`},
		{"a missing weight", write("missing", func(m *toyModel) { m.skipTensor = "blk.1.ffn_up.weight" }), []int32{1}, "no tensor blk.1.ffn_up.weight"},
		{"a weight of the wrong shape", write("shape", func(m *toyModel) { m.badTensor = "blk.0.attn_k.weight" }), []int32{1}, "tensor blk.0.attn_k.weight has shape [96 32 1 1], want [64 32]"},
		{"heads that do not divide", write("heads", func(m *toyModel) { m.kvHeads = 3 }), []int32{1}, "4 query heads cannot share 3 key/value heads"},
		{"YaRN RoPE scaling", write("yarn", func(m *toyModel) {
			m.extraKV = []gguf.KV{{Key: "llama.rope.scaling.type", Value: gguf.Str("yarn")}}
		}), []int32{1}, `rope scaling "yarn" is not supported`},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused with a clear error", func(t *testing.T) {
			_, err := Forward(c.path, c.tokens, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
