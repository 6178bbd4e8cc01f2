package synth

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"tilelab/engine/gguf"
	"tilelab/engine/tensor"
	testdataset "tilelab/internal/testdata"
)

func testdataDir(t *testing.T) string { return testdataset.Dir(t) }

// perLayer is the number of tensors each layer of a shape has, counted from llama.cpp's loaders: 4 attention
// matrices and 2 norms everywhere, QK-norm for qwen3*, then 3 FFN matrices, plus the router for MoE.
func perLayer(s Shape) int {
	n := 6 + 3
	if s.Arch != "llama" {
		n += 2
	}
	if s.MoE() {
		n++
	}
	return n
}

func TestEveryPresetHeaderIsConsistent(t *testing.T) {
	for _, name := range Presets() {
		t.Run(name+" has llama.cpp's keys, tensor count and shapes", func(t *testing.T) {
			s, _ := Lookup(name)
			f, err := Header(name, Options{Quant: tensor.Q4_0})
			if err != nil {
				t.Fatal(err)
			}
			a := s.Arch + "."
			u := func(k string) int {
				v, ok := f.Get(k)
				if !ok || v.Type() != gguf.TypeUint32 {
					t.Errorf("%s: missing or not uint32 (%v)", k, v.Type())
				}
				n, _ := v.Uint()
				return int(n)
			}
			if f.Architecture() != s.Arch {
				t.Errorf("architecture %q, want %q", f.Architecture(), s.Arch)
			}
			if u(a+"block_count") != s.Layers || u(a+"embedding_length") != s.Embd || u(a+"attention.head_count") != s.Heads ||
				u(a+"attention.head_count_kv") != s.KVHeads || u(a+"feed_forward_length") != s.FF || u(a+"context_length") != s.Context {
				t.Error("hyperparameters differ from the preset")
			}
			for _, k := range []string{a + "rope.freq_base", a + "attention.layer_norm_rms_epsilon"} {
				if v, ok := f.Get(k); !ok || v.Type() != gguf.TypeFloat32 {
					t.Errorf("%s: missing or not float32", k)
				}
			}
			if s.Arch == "llama" {
				if u(a+"rope.dimension_count") != s.HeadDim || u(a+"vocab_size") != s.Vocab {
					t.Error("llama rope.dimension_count or vocab_size wrong")
				}
			} else if u(a+"attention.key_length") != s.HeadDim || u(a+"attention.value_length") != s.HeadDim {
				t.Error("key_length/value_length wrong")
			}
			if s.MoE() && (u(a+"expert_count") != s.Experts || u(a+"expert_used_count") != s.ExpertUsed || u(a+"expert_feed_forward_length") != s.ExpertFF) {
				t.Error("expert keys wrong")
			}
			if u("general.file_type") != 2 || u("general.quantization_version") != 2 {
				t.Error("file_type should be 2 (MOSTLY_Q4_0), quantization_version 2")
			}
			toks, _ := f.Strings("tokenizer.ggml.tokens")
			if len(toks) != s.Vocab {
				t.Errorf("%d tokens, want %d", len(toks), s.Vocab)
			}
			if want := 3 + s.Layers*perLayer(s); len(f.Tensors) != want {
				t.Errorf("%d tensors, want %d", len(f.Tensors), want)
			}
			qd, kvd := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
			want := map[string][4]int{
				"token_embd.weight":        {s.Embd, s.Vocab, 1, 1},
				"output.weight":            {s.Embd, s.Vocab, 1, 1},
				"output_norm.weight":       {s.Embd, 1, 1, 1},
				"blk.0.attn_q.weight":      {s.Embd, qd, 1, 1},
				"blk.0.attn_k.weight":      {s.Embd, kvd, 1, 1},
				"blk.0.attn_v.weight":      {s.Embd, kvd, 1, 1},
				"blk.0.attn_output.weight": {qd, s.Embd, 1, 1},
			}
			last := s.Layers - 1
			if s.MoE() {
				want["blk.0.ffn_gate_inp.weight"] = [4]int{s.Embd, s.Experts, 1, 1}
				want["blk.0.ffn_gate_exps.weight"] = [4]int{s.Embd, s.ExpertFF, s.Experts, 1}
				want["blk.0.ffn_up_exps.weight"] = [4]int{s.Embd, s.ExpertFF, s.Experts, 1}
				want["blk."+itoa(last)+".ffn_down_exps.weight"] = [4]int{s.ExpertFF, s.Embd, s.Experts, 1}
			} else {
				want["blk.0.ffn_gate.weight"] = [4]int{s.Embd, s.FF, 1, 1}
				want["blk."+itoa(last)+".ffn_down.weight"] = [4]int{s.FF, s.Embd, 1, 1}
			}
			if s.Arch != "llama" {
				want["blk.0.attn_q_norm.weight"] = [4]int{s.HeadDim, 1, 1, 1}
				want["blk.0.attn_k_norm.weight"] = [4]int{s.HeadDim, 1, 1, 1}
			}
			for n, ne := range want {
				ti, ok := f.Tensor(n)
				if !ok {
					t.Errorf("missing %s", n)
					continue
				}
				if ti.Ne != ne {
					t.Errorf("%s: shape %v, want %v", n, ti.Ne, ne)
				}
			}
			for _, ti := range f.Tensors {
				plain := strings.HasSuffix(ti.Name, "_norm.weight") || strings.HasSuffix(ti.Name, "ffn_gate_inp.weight")
				if plain != (ti.Type == tensor.F32) || !plain && ti.Type != tensor.Q4_0 {
					t.Errorf("%s is %v: norms and the router stay F32, the rest take the weight type", ti.Name, ti.Type)
				}
				if ti.Ne[0]%32 != 0 {
					t.Errorf("%s: ne0 %d is not a multiple of 32", ti.Name, ti.Ne[0])
				}
			}
			if _, ok := f.Get(a + "attention.key_length"); s.Arch == "llama" && ok != (s.Embd != s.Heads*s.HeadDim) {
				t.Error("llama files carry key_length exactly when the head dimension is not embedding/heads")
			}
			if strings.HasPrefix(name, "tiny-") && (s.Context < 4096 || s.HeadDim < 32 || s.Embd < 64) {
				t.Error("tiny presets need context ≥ 4096, head dim ≥ 32, embedding ≥ 64")
			}
		})
	}
	t.Run("qwen3-30b-a3b in Q4_0 is the 17 GB file the seed measured", func(t *testing.T) {
		f, _ := Header("qwen3-30b-a3b", Options{Quant: tensor.Q4_0})
		if gb := float64(f.Size()) / 1e9; gb < 17 || gb > 17.5 {
			t.Errorf("size %.2f GB", gb)
		}
	})
	t.Run("layers overrides the block count", func(t *testing.T) {
		f, err := Header("qwen3-30b-a3b", Options{Quant: tensor.Q4_0, Layers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := f.Uint("qwen3moe.block_count"); n != 2 || len(f.Tensors) != 3+2*perLayer(presets["qwen3-30b-a3b"]) {
			t.Errorf("block_count %d, %d tensors", n, len(f.Tensors))
		}
		if _, ok := f.Tensor("blk.2.attn_q.weight"); ok {
			t.Error("a third layer exists")
		}
	})
}

func TestShapesDescribeThemselves(t *testing.T) {
	s, _ := Lookup("qwen3-30b-a3b")
	want := "qwen3moe: 48 layers, embedding 2048, 32/4 heads of 128, FFN 6144, 128 experts (8 used, FFN 768), vocabulary 151936, context 40960"
	if s.String() != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestTinyMoEHeaderMatchesTheFileLlamaCppWrote compares tiny-moe, given the same vocabulary and weight type,
// with ../shared/testdata/models/tiny-qwen3moe-q4_0.gguf, written by llama.cpp's own tools: every key (in
// order, with its type and value, except general.name) and every tensor info must be the same.
func TestTinyMoEHeaderMatchesTheFileLlamaCppWrote(t *testing.T) {
	td := testdataDir(t)
	real, err := gguf.Open(filepath.Join(td, "models", "tiny-qwen3moe-q4_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	f, err := Header("tiny-moe", Options{Quant: tensor.Q4_0, Vocab: filepath.Join(td, "tokenizer", "qwen3-vocab.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.KV) != len(real.KV) {
		t.Fatalf("%d keys, llama.cpp wrote %d", len(f.KV), len(real.KV))
	}
	for i, e := range real.KV {
		g := f.KV[i]
		if g.Key != e.Key {
			t.Errorf("key %d is %q, llama.cpp wrote %q", i, g.Key, e.Key)
		} else if e.Key != "general.name" && !g.Value.Equal(e.Value) {
			t.Errorf("%s = %v %v, llama.cpp wrote %v %v", e.Key, g.Value.Type(), g.Value, e.Value.Type(), e.Value)
		}
	}
	if len(f.Tensors) != len(real.Tensors) {
		t.Fatalf("%d tensors, llama.cpp wrote %d", len(f.Tensors), len(real.Tensors))
	}
	for i, e := range real.Tensors {
		if f.Tensors[i] != e {
			t.Errorf("tensor %d is %+v, llama.cpp wrote %+v", i, f.Tensors[i], e)
		}
	}
}

func TestWrittenFilesRoundTripThroughOpen(t *testing.T) {
	dir := t.TempDir()
	for _, preset := range []string{"tiny-dense", "tiny-moe", "tiny-llama"} {
		for _, q := range Quants {
			t.Run(preset+" in "+q.String()+" opens as its header says, with weights of std 0.02", func(t *testing.T) {
				o := Options{Quant: q, Seed: 3}
				path := filepath.Join(dir, preset+"-"+q.String()+".gguf")
				if err := WriteFile(path, preset, o); err != nil {
					t.Fatal(err)
				}
				h, _ := Header(preset, o)
				f, err := gguf.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				st, _ := os.Stat(path)
				if f.Size() != h.Size() || st.Size() != h.Size() || f.DataOffset != h.DataOffset {
					t.Errorf("file is %d bytes (data at %d), header said %d (%d)", st.Size(), f.DataOffset, h.Size(), h.DataOffset)
				}
				for i := range h.Tensors {
					if f.Tensors[i] != h.Tensors[i] {
						t.Fatalf("tensor %d: %+v, header said %+v", i, f.Tensors[i], h.Tensors[i])
					}
				}
				for i := range h.KV {
					if f.KV[i].Key != h.KV[i].Key || !f.KV[i].Value.Equal(h.KV[i].Value) {
						t.Fatalf("key %s differs", h.KV[i].Key)
					}
				}
				for i := range f.Tensors {
					ti := &f.Tensors[i]
					y, err := tensor.DequantizeRow(ti.Type, f.TensorData(ti), int(ti.Elems()))
					if err != nil {
						t.Fatal(err)
					}
					var sum, sq float64
					for _, v := range y {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							t.Fatalf("%s has %g", ti.Name, v)
						}
						sum += float64(v)
						sq += float64(v) * float64(v)
					}
					n := float64(len(y))
					mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
					if strings.HasSuffix(ti.Name, "_norm.weight") {
						if mean != 1 || std != 0 {
							t.Errorf("%s: norm weights should all be 1, mean %g std %g", ti.Name, mean, std)
						}
						continue
					}
					if len(y) >= 4096 && (math.Abs(std-0.02) > 0.002 || math.Abs(mean) > 0.002) {
						t.Errorf("%s: mean %.4f std %.4f, want about 0 and 0.02", ti.Name, mean, std)
					}
				}
			})
		}
	}
}

func TestSameSeedGivesTheSameBytes(t *testing.T) {
	write := func(seed uint64, procs int) []byte {
		old := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(old)
		var buf bytes.Buffer
		if err := Write(&buf, "tiny-moe", Options{Quant: tensor.Q4_0, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a := write(7, 1)
	t.Run("on one thread or several", func(t *testing.T) {
		if !bytes.Equal(a, write(7, 4)) {
			t.Error("bytes differ between 1 and 4 threads")
		}
	})
	t.Run("but not for another seed", func(t *testing.T) {
		b := write(8, 1)
		if len(a) != len(b) || bytes.Equal(a, b) {
			t.Error("seed 8 gave the bytes of seed 7")
		}
	})
	t.Run("and one tensor's bytes do not depend on the layer count", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Write(&buf, "tiny-moe", Options{Quant: tensor.Q4_0, Seed: 7, Layers: 1}); err != nil {
			t.Fatal(err)
		}
		f1, _ := gguf.Parse(buf.Bytes())
		f4, _ := gguf.Parse(a)
		for _, n := range []string{"token_embd.weight", "blk.0.ffn_down_exps.weight"} {
			t1, _ := f1.Tensor(n)
			t4, _ := f4.Tensor(n)
			if !bytes.Equal(f1.TensorData(t1), f4.TensorData(t4)) {
				t.Errorf("%s differs", n)
			}
		}
	})
}

func TestBadNamesAreRefusedWithTheValidOnes(t *testing.T) {
	_, e1 := Header("tiny-moee", Options{})
	_, e2 := ParseQuant("q5_k")
	_, e3 := Header("tiny-dense", Options{Quant: tensor.Q4_K})
	_, e4 := Header("tiny-dense", Options{Layers: -1})
	_, e5 := Header("tiny-dense", Options{Vocab: filepath.Join(t.TempDir(), "missing.gguf")})
	_, e6 := Header("tiny-dense", Options{Layers: 1 << 40})
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"an unknown preset lists the presets", e1, `unknown preset "tiny-moee" (valid: bench-moe, qwen3-30b-a3b, qwen3-8b, tiny-dense, tiny-llama, tiny-moe)`},
		{"an unknown weight type lists the types", e2, `unknown weight type "q5_k" (valid: f32, f16, bf16, q8_0, q4_0)`},
		{"a known type synth does not write lists the types", e3, "weight type q4_k is not one synth writes (valid: f32, f16, bf16, q8_0, q4_0)"},
		{"negative layers are refused", e4, "layers must be positive, got -1"},
		{"a missing vocabulary file is named", e5, "missing.gguf"},
		{"more layers than llama.cpp loads are refused before building the tensor list", e6, "layers 1099511627776 exceeds llama.cpp's limit of 512"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
				t.Errorf("err = %v, want %q", c.err, c.want)
			}
		})
	}
	t.Run("weight type names are case-insensitive", func(t *testing.T) {
		if q, err := ParseQuant("Q8_0"); err != nil || q != tensor.Q8_0 {
			t.Errorf("got %v, %v", q, err)
		}
	})
}
