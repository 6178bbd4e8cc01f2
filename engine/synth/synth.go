// Package synth writes deterministic synthetic models as GGUF files: real architectures (qwen3, qwen3moe,
// llama) with tensor names, metadata keys and value types as llama.cpp writes and loads them, a vocabulary
// (built in, or copied from another GGUF), and random weights.
//
// Weights are normal-ish with standard deviation 0.02 (norms are 1.0), seeded and deterministic: the same
// preset, options and seed give the same bytes, whatever the machine or number of threads. Quantized weights
// are generated as blocks directly — a random scale per block (either sign) and uniform random quants — rather
// than by quantizing floats, so a 17 GB Q4_0 file streams to disk about as fast as the disk takes it, and
// nothing but a few chunks is ever held in memory.
package synth

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/bits"
	"os"
	"runtime"
	"sort"
	"strings"

	"tilelab/engine/gguf"
	"tilelab/engine/tensor"
)

// Options are the per-call choices; the zero value is F32 weights, the preset's layers, the built-in
// vocabulary and seed 0.
type Options struct {
	Quant  tensor.DType // weight type of the matrices: F32, F16, BF16, Q8_0 or Q4_0 (norms and router stay F32)
	Layers int          // block count override when > 0
	Vocab  string       // GGUF file whose tokenizer.* keys to copy; "" for the built-in vocabulary
	Seed   uint64
	// Progress, when set, is called after each chunk written with the tensor bytes done and the total.
	Progress func(done, total int64)
}

// MaxLayers is the most layers a preset may be given: llama.cpp's LLAMA_MAX_LAYERS (src/llama-hparams.h), so every
// file synth writes loads there, and a mistyped count fails at once instead of building a tensor list that
// exhausts memory.
const MaxLayers = 512

// Quants lists the weight types synth writes.
var Quants = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0}

func quantNames() string {
	s := make([]string, len(Quants))
	for i, q := range Quants {
		s[i] = q.String()
	}
	return strings.Join(s, ", ")
}

// ParseQuant reads a weight type name ("q4_0", "F16"), or gives an error listing the valid ones.
func ParseQuant(name string) (tensor.DType, error) {
	for _, q := range Quants {
		if strings.EqualFold(name, q.String()) {
			return q, nil
		}
	}
	return 0, fmt.Errorf("synth: unknown weight type %q (valid: %s)", name, quantNames())
}

// fileType is llama.cpp's llama_ftype for a file whose matrices are all of one type (general.file_type).
var fileType = map[tensor.DType]uint32{tensor.F32: 0, tensor.F16: 1, tensor.Q4_0: 2, tensor.Q8_0: 7, tensor.BF16: 32}

// Header builds the preset's metadata-only GGUF File: what Write would write, without writing anything. It is
// fast for every preset, qwen3-30b-a3b included.
func Header(preset string, o Options) (*gguf.File, error) {
	s, err := Lookup(preset)
	if err != nil {
		return nil, err
	}
	if _, ok := fileType[o.Quant]; !ok {
		return nil, fmt.Errorf("synth: weight type %v is not one synth writes (valid: %s)", o.Quant, quantNames())
	}
	if o.Layers < 0 {
		return nil, fmt.Errorf("synth: layers must be positive, got %d", o.Layers)
	}
	if o.Layers > MaxLayers {
		return nil, fmt.Errorf("synth: layers %d exceeds llama.cpp's limit of %d", o.Layers, MaxLayers)
	}
	if o.Layers > 0 {
		s.Layers = o.Layers
	}
	var v vocab
	switch {
	case o.Vocab != "":
		v, err = vocabFromFile(o.Vocab)
	case s.SPM:
		v, err = builtinSPM(s.Vocab)
	default:
		v, err = builtinBPE(s.Vocab)
	}
	if err != nil {
		return nil, err
	}
	return gguf.NewFile(metadata(preset, s, o, v), tensorInfos(s, o.Quant, v.n))
}

// metadata lists the KVs in the order llama.cpp's converter writes them: general keys, the architecture's
// hyperparameters, the tokenizer, then the quantization keys.
func metadata(preset string, s Shape, o Options, v vocab) []gguf.KV {
	a := s.Arch + "."
	u := func(n int) gguf.Value { return gguf.Uint32(uint32(n)) }
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.Str(s.Arch)},
		{Key: "general.type", Value: gguf.Str("model")},
		{Key: "general.name", Value: gguf.Str(fmt.Sprintf("tilelab synth %s %v seed %d", preset, o.Quant, o.Seed))},
	}
	if s.Arch == "llama" {
		kv = append(kv, gguf.KV{Key: a + "vocab_size", Value: u(v.n)})
	}
	kv = append(kv,
		gguf.KV{Key: a + "block_count", Value: u(s.Layers)},
		gguf.KV{Key: a + "context_length", Value: u(s.Context)},
		gguf.KV{Key: a + "embedding_length", Value: u(s.Embd)},
		gguf.KV{Key: a + "feed_forward_length", Value: u(s.FF)},
		gguf.KV{Key: a + "attention.head_count", Value: u(s.Heads)},
		gguf.KV{Key: a + "attention.head_count_kv", Value: u(s.KVHeads)},
		gguf.KV{Key: a + "rope.freq_base", Value: gguf.Float32(s.RopeBase)},
		gguf.KV{Key: a + "attention.layer_norm_rms_epsilon", Value: gguf.Float32(s.NormEps)},
	)
	if s.Arch == "llama" {
		kv = append(kv, gguf.KV{Key: a + "rope.dimension_count", Value: u(s.HeadDim)})
	}
	// llama.cpp takes the head dimension to be embedding/heads unless key_length says otherwise; LLaMA's
	// converter writes it only when it differs, Qwen3's always (Qwen3-30B-A3B's heads are 128 wide, not 64).
	if s.Arch != "llama" || s.Embd != s.Heads*s.HeadDim {
		kv = append(kv,
			gguf.KV{Key: a + "attention.key_length", Value: u(s.HeadDim)},
			gguf.KV{Key: a + "attention.value_length", Value: u(s.HeadDim)},
		)
	}
	if s.MoE() {
		kv = append(kv,
			gguf.KV{Key: a + "expert_count", Value: u(s.Experts)},
			gguf.KV{Key: a + "expert_used_count", Value: u(s.ExpertUsed)},
			gguf.KV{Key: a + "expert_feed_forward_length", Value: u(s.ExpertFF)},
		)
	}
	kv = append(kv, v.kv...)
	kv = append(kv,
		gguf.KV{Key: "general.quantization_version", Value: u(2)},
		gguf.KV{Key: "general.file_type", Value: u(int(fileType[o.Quant]))},
	)
	return kv
}

// tensorInfos lists the weights with llama.cpp's names and shapes (ggml order: ne[0] is the input dimension of a
// matrix), ordered as llama.cpp's tools order them: the global tensors, then each layer's, by name.
func tensorInfos(s Shape, q tensor.DType, nVocab int) []gguf.TensorInfo {
	f32 := tensor.F32
	ts := []gguf.TensorInfo{
		gguf.NewTensorInfo("output.weight", q, s.Embd, nVocab),
		gguf.NewTensorInfo("output_norm.weight", f32, s.Embd),
		gguf.NewTensorInfo("token_embd.weight", q, s.Embd, nVocab),
	}
	qDim, kvDim := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	for l := 0; l < s.Layers; l++ {
		n := func(what string) string { return fmt.Sprintf("blk.%d.%s.weight", l, what) }
		layer := []gguf.TensorInfo{
			gguf.NewTensorInfo(n("attn_norm"), f32, s.Embd),
			gguf.NewTensorInfo(n("attn_q"), q, s.Embd, qDim),
			gguf.NewTensorInfo(n("attn_k"), q, s.Embd, kvDim),
			gguf.NewTensorInfo(n("attn_v"), q, s.Embd, kvDim),
			gguf.NewTensorInfo(n("attn_output"), q, qDim, s.Embd),
			gguf.NewTensorInfo(n("ffn_norm"), f32, s.Embd),
		}
		if s.Arch != "llama" {
			layer = append(layer,
				gguf.NewTensorInfo(n("attn_q_norm"), f32, s.HeadDim),
				gguf.NewTensorInfo(n("attn_k_norm"), f32, s.HeadDim))
		}
		if s.MoE() {
			layer = append(layer,
				gguf.NewTensorInfo(n("ffn_gate_inp"), f32, s.Embd, s.Experts),
				gguf.NewTensorInfo(n("ffn_gate_exps"), q, s.Embd, s.ExpertFF, s.Experts),
				gguf.NewTensorInfo(n("ffn_up_exps"), q, s.Embd, s.ExpertFF, s.Experts),
				gguf.NewTensorInfo(n("ffn_down_exps"), q, s.ExpertFF, s.Embd, s.Experts))
		} else {
			layer = append(layer,
				gguf.NewTensorInfo(n("ffn_gate"), q, s.Embd, s.FF),
				gguf.NewTensorInfo(n("ffn_up"), q, s.Embd, s.FF),
				gguf.NewTensorInfo(n("ffn_down"), q, s.FF, s.Embd))
		}
		sort.Slice(layer, func(i, j int) bool { return layer[i].Name < layer[j].Name })
		ts = append(ts, layer...)
	}
	return ts
}

// isNorm reports whether a tensor is a norm weight, which synth sets to 1.0 as a freshly initialised model has.
func isNorm(name string) bool { return strings.HasSuffix(name, "_norm.weight") }

// Write streams the preset's GGUF file to w.
func Write(w io.Writer, preset string, o Options) error {
	f, err := Header(preset, o)
	if err != nil {
		return err
	}
	return writeData(w, f, o)
}

// WriteFile writes the preset's GGUF file to path and syncs it to disk; on error the partial file is removed.
func WriteFile(path, preset string, o Options) (err error) {
	f, err := Header(preset, o)
	if err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := writeData(out, f, o); err != nil {
		return err
	}
	return out.Sync()
}

// chunkElems is the number of elements generated as one unit. It is part of the output's definition (each chunk
// has its own random stream), so it must not change, or the same seed would give different bytes.
const chunkElems = 1 << 20

type job struct {
	t     *gguf.TensorInfo
	seed  uint64
	chunk int64
	n     int64 // elements in this chunk
	buf   []byte
	done  chan struct{}
}

// writeData writes the header and then every tensor's bytes, generated in chunks by a few workers and written
// in order, so generation overlaps the disk.
func writeData(w io.Writer, f *gguf.File, o Options) error {
	gw, err := gguf.NewWriter(w, f)
	if err != nil {
		return err
	}
	var total int64
	for i := range f.Tensors {
		total += f.Tensors[i].Size
	}
	workers := min(runtime.GOMAXPROCS(0), 8)
	order := make(chan *job, 2*workers)
	jobs := make(chan *job, 2*workers)
	quit := make(chan struct{})
	free := make(chan []byte, 3*workers+2)
	go func() {
		defer close(order)
		defer close(jobs)
		for i := range f.Tensors {
			t := &f.Tensors[i]
			seed := tensorSeed(o.Seed, t.Name)
			elems := t.Elems()
			for c := int64(0); c*chunkElems < elems; c++ {
				j := &job{t: t, seed: seed, chunk: c, n: min(chunkElems, elems-c*chunkElems), done: make(chan struct{}, 1)}
				select {
				case order <- j:
				case <-quit:
					return
				}
				select {
				case jobs <- j:
				case <-quit:
					return
				}
			}
		}
	}()
	for k := 0; k < workers; k++ {
		go func() {
			for j := range jobs {
				var buf []byte
				select {
				case buf = <-free:
				default:
				}
				size := int(j.t.Type.RowBytes(int(j.n)))
				if cap(buf) < size {
					buf = make([]byte, size)
				}
				j.buf = buf[:size]
				fill(j.t.Type, isNorm(j.t.Name), j.buf, j.seed, j.chunk)
				j.done <- struct{}{}
			}
		}()
	}
	var done int64
	for j := range order {
		<-j.done
		if _, err := gw.Write(j.buf); err != nil {
			close(quit)
			return err
		}
		done += int64(len(j.buf))
		select {
		case free <- j.buf:
		default:
		}
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}
	return gw.Close()
}

// tensorSeed gives each tensor its own stream, so tensors do not depend on the order they are generated in.
func tensorSeed(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return mix(seed ^ mix(h.Sum64()))
}

// mix is splitmix64's finaliser: a bijection that scatters nearby inputs.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// rng is wyrand: one multiply per 64 random bits, fast enough to stay ahead of a disk.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// normal returns an approximately normal value with standard deviation std: the sum of four 16-bit uniforms
// (Irwin–Hall), centred and scaled.
func (r *rng) normal(std float32) float32 {
	x := r.next()
	sum := int64(x&0xffff) + int64(x>>16&0xffff) + int64(x>>32&0xffff) + int64(x>>48)
	const mean, sd = 4 * 65535 / 2.0, 37837.23 // sd = sqrt(4·(65536²−1)/12)
	return float32((float64(sum) - mean) / sd * float64(std))
}

const weightStd = 0.02

// Scale tables: 256 block scales as f16, half of each sign, with magnitudes spread evenly over 0.5–1.5 times a
// base chosen so that the weights' standard deviation is 0.02. A uniform nibble q gives q−8 with mean square
// 21.5; a uniform int8 has mean square 5461.5; E[(0.5+u)²] = 13/12.
var q4Scales, q8Scales = scaleTable(math.Sqrt(21.5)), scaleTable(math.Sqrt(5461.5))

func scaleTable(rmsQ float64) (t [256]uint16) {
	base := weightStd / rmsQ / math.Sqrt(13.0/12)
	for i := range t {
		d := base * (0.5 + float64(i>>1)/128)
		if i&1 == 1 {
			d = -d
		}
		t[i] = tensor.F32ToF16(float32(d))
	}
	return t
}

// fill generates one chunk of a tensor's bytes.
func fill(t tensor.DType, norm bool, b []byte, seed uint64, chunk int64) {
	r := rng{s: mix(seed + uint64(chunk)*0x9e3779b97f4a7c15)}
	le := binary.LittleEndian
	switch t {
	case tensor.F32:
		for i := 0; i < len(b); i += 4 {
			v := float32(1)
			if !norm {
				v = r.normal(weightStd)
			}
			le.PutUint32(b[i:], math.Float32bits(v))
		}
	case tensor.F16:
		for i := 0; i < len(b); i += 2 {
			le.PutUint16(b[i:], tensor.F32ToF16(r.normal(weightStd)))
		}
	case tensor.BF16:
		for i := 0; i < len(b); i += 2 {
			le.PutUint16(b[i:], tensor.F32ToBF16(r.normal(weightStd)))
		}
	case tensor.Q4_0:
		for i := 0; i+18 <= len(b); i += 18 {
			x := r.next()
			le.PutUint16(b[i:], q4Scales[x&255])
			le.PutUint64(b[i+2:], r.next())
			le.PutUint64(b[i+10:], r.next())
		}
	case tensor.Q8_0:
		for i := 0; i+34 <= len(b); i += 34 {
			x := r.next()
			le.PutUint16(b[i:], q8Scales[x&255])
			le.PutUint64(b[i+2:], r.next())
			le.PutUint64(b[i+10:], r.next())
			le.PutUint64(b[i+18:], r.next())
			le.PutUint64(b[i+26:], r.next())
		}
	}
}
