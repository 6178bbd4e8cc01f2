// Package model builds the forward pass of the llama, qwen2, qwen3 and qwen3moe architectures from a GGUF file and
// runs it: weights placed by engine/placement and imported into their buffer types, a graph of ops per batch that
// the backend scheduler hands to backends, a KV cache, and sampling.
//
// The forward passes (forward.go) read like llama2.c's forward(): one function per architecture family, layer by
// layer. The machinery (placement, scheduling, kernels, buffers) stays behind the graph builder.
package model

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/graph"
	"tilelab/engine/placement"
	"tilelab/engine/pool"
	"tilelab/engine/profile"
	"tilelab/engine/tensor"
)

// Options configure Load.
type Options struct {
	Placement placement.Options
	// Registry holds the buffer types and backends to use. nil: a CPU-only registry. A registry without a "CPU"
	// buffer type or backend gets this package's, the backend last (lowest priority).
	Registry *backend.Registry
	Threads  int               // workers of the CPU backend's pool (0: pool.DefaultThreads, one per CPU the process may use); unused if Registry brings a CPU backend
	Ctx      int               // KV cache length in tokens (0: the training context, at most 4096)
	KV       tensor.DType      // the KV cache's element type: F32 (the zero value) or F16 (half the bytes)
	Batch    int               // most tokens evaluated in one graph (0: 512); longer inputs are split
	Profile  *profile.Recorder // per-op records, nil for none
	// Reference keeps every CPU op on the float32 reference kernels (for oracle comparisons).
	Reference bool
	// Progress, when set, hears how far the weights that a buffer type converts at load (every type but the
	// plain CPU one: AMX repacks its weights) have come: GGUF bytes done of total, after each such weight. A
	// 30B model's experts take tens of seconds to repack; a load that converts nothing calls it never.
	Progress func(done, total int64)
}

// Model is a loaded model with its KV cache. It is not safe for concurrent use.
type Model struct {
	File     *gguf.File
	Hyper    Hyper
	Plan     *placement.Plan
	Registry *backend.Registry
	// Sched runs every graph; its Profile and, with Trace set, its Assignments describe the last one.
	Sched *backend.Scheduler
	CPU   *cpu.Backend // the CPU backend in use; nil when the registry's is wrapped in another type
	Ctx   int          // KV cache length
	KV    tensor.DType // the KV cache's element type: F32 or F16
	Batch int

	weights  map[string]*graph.Tensor
	tokEmbd  *graph.Tensor
	outNorm  *graph.Tensor
	output   *graph.Tensor
	layers   []layer
	kc, vc   []*graph.Tensor // per-layer caches: K [HeadDim, Ctx, HeadsKV], V [Ctx, HeadDim, HeadsKV]
	nPast    int
	ownPool  *pool.Pool
	b        *graph.Builder
	logits   []float32 // the last position's logits, reused
	profiled *profile.Recorder
}

// layer holds one block's weights (nil where the architecture has none) and its op names, built once so that
// building a graph allocates no strings.
type layer struct {
	attnNorm, wq, wk, wv, wo, bq, bk, bv, bo, qNorm, kNorm *graph.Tensor
	ffnNorm, gate, up, down                                *graph.Tensor
	router, gateExps, upExps, downExps                     *graph.Tensor
	n                                                      names
}

type names struct {
	attnNorm, q, k, v, qb, kb, vb, qNorm, kNorm, qRope, kRope, kStore, vStore, attn, o, ob, attnRes string
	ffnNorm, gate, up, act, down, ffnRes                                                            string
	router, probs, topk, weights, gateExps, upExps, act2, downExps, moeSum                          string
	// The fused ops' names.
	qkv, attnOutRes, ffnGateUp, ffnDownRes, gateUpExps, downExpsSumRes string
}

func layerNames(i int) names {
	p := fmt.Sprintf("blk.%d.", i)
	return names{
		attnNorm: p + "attn_norm", q: p + "attn_q", k: p + "attn_k", v: p + "attn_v",
		qb: p + "attn_q.bias", kb: p + "attn_k.bias", vb: p + "attn_v.bias",
		qNorm: p + "attn_q_norm", kNorm: p + "attn_k_norm", qRope: p + "q_rope", kRope: p + "k_rope",
		kStore: p + "k_cache_store", vStore: p + "v_cache_store", attn: p + "attention", o: p + "attn_output",
		ob: p + "attn_output.bias", attnRes: p + "attn_residual",
		ffnNorm: p + "ffn_norm", gate: p + "ffn_gate", up: p + "ffn_up", act: p + "ffn_swiglu", down: p + "ffn_down",
		ffnRes: p + "ffn_residual", router: p + "ffn_gate_inp", probs: p + "ffn_moe_probs", topk: p + "ffn_moe_topk",
		weights: p + "ffn_moe_weights", gateExps: p + "ffn_gate_exps", upExps: p + "ffn_up_exps",
		act2: p + "ffn_moe_swiglu", downExps: p + "ffn_down_exps", moeSum: p + "ffn_moe_out",
		qkv: p + "attn_qkv", attnOutRes: p + "attn_output_res", ffnGateUp: p + "ffn_gate_up", ffnDownRes: p + "ffn_down_res",
		gateUpExps: p + "ffn_gate_up_exps", downExpsSumRes: p + "ffn_down_exps_sum_res",
	}
}

// Load reads the architecture and hyperparameters, places every weight (placement.Place), imports each into its
// buffer type, and allocates the KV cache. The file must stay open while the model is in use: weights in plain
// host buffers are views of its mapping.
func Load(f *gguf.File, o Options) (*Model, error) {
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, fmt.Errorf("model: %s has no token_embd.weight", f.Path())
	}
	h, err := ReadHyper(f, emb.Ne[1])
	if err != nil {
		return nil, err
	}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		return nil, fmt.Errorf("model: %s has rope_freqs.weight (per-dimension RoPE factors), which TileLab does not support", f.Path())
	}
	m := &Model{File: f, Hyper: h, Registry: o.Registry, weights: map[string]*graph.Tensor{}, profiled: o.Profile}
	if err := m.setupBackends(o); err != nil {
		return nil, err
	}
	if err := m.loadWeights(f, o.Placement, o.Progress); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.bindLayers(); err != nil {
		m.Close()
		return nil, err
	}
	m.Ctx = o.Ctx
	if m.Ctx <= 0 {
		m.Ctx = 4096
		if h.CtxTrain > 0 {
			m.Ctx = min(h.CtxTrain, 4096)
		}
	}
	m.Batch = o.Batch
	if m.Batch <= 0 {
		m.Batch = 512
	}
	m.Batch = min(m.Batch, m.Ctx)
	if m.Ctx > maxCtx {
		m.Close()
		return nil, fmt.Errorf("model: a context of %d tokens is more than the %d TileLab supports", m.Ctx, maxCtx)
	}
	m.KV = o.KV // the zero DType is F32
	switch m.KV {
	case tensor.F32, tensor.F16:
	default:
		m.Close()
		return nil, fmt.Errorf("model: a KV cache of %s: the cache holds f32 or f16", o.KV)
	}
	if err := fitsMemory(h.KVBytes(m.Ctx, m.KV)); err != nil {
		m.Close()
		return nil, fmt.Errorf("model: a KV cache of %d tokens: %w", m.Ctx, err)
	}
	for i := 0; i < h.Layers; i++ {
		// Keys as rows of HeadDim per position, values transposed (a row over positions per dimension), each KV
		// head's block contiguous: both attention products are then plain matrix products (see graph.Attention).
		n := h.HeadDim * h.HeadsKV * m.Ctx
		m.kc = append(m.kc, m.kvTensor(fmt.Sprintf("cache_k_l%d", i), n, [4]int{h.HeadDim, m.Ctx, h.HeadsKV, 1}))
		m.vc = append(m.vc, m.kvTensor(fmt.Sprintf("cache_v_l%d", i), n, [4]int{m.Ctx, h.HeadDim, h.HeadsKV, 1}))
	}
	m.b = graph.NewBuilder()
	m.logits = make([]float32, h.Vocab)
	m.sizeArena()
	return m, nil
}

// kvTensor is one cache of n elements of the model's KV type, in host memory.
func (m *Model) kvTensor(name string, n int, ne [4]int) *graph.Tensor {
	t := &graph.Tensor{Name: name, Type: m.KV, Layout: tensor.Plain, Ne: ne, BufferType: cpu.Name}
	if m.KV == tensor.F32 {
		t.F32 = make([]float32, n)
	} else {
		t.Data = make([]byte, n*m.KV.BlockBytes())
	}
	return t
}

// sizeArena builds, without running it, the graph of the largest batch at the end of the context, so the arena's
// storage is allocated at load rather than grown over the first passes: each growth is fresh memory that the next
// pass faults in, which made the first two 512-token prompts on the accelerator machine 1.6-2x slower than the
// rest (pages faulted by 16 workers at once), and llama-bench semantics warm up with one pass only.
func (m *Model) sizeArena() {
	b := m.b
	b.Reset()
	n := m.Batch
	in := batch{ids: b.Arena.NewI32("inp_tokens", n), pos: b.Arena.NewI32("inp_pos", n), nPast: m.Ctx - n, logits: true}
	clear(in.ids.I32)
	clear(in.pos.I32)
	m.forward(b, &in)
	b.Reset()
}

// setupBackends makes sure the registry has a CPU buffer type and a CPU backend. A backend named "CPU" counts as
// the CPU backend even when a caller wrapped it (the workbench's check does), so no second one is added.
func (m *Model) setupBackends(o Options) error {
	if m.Registry == nil {
		m.Registry = backend.NewRegistry()
	}
	if _, err := m.Registry.BufferType(cpu.Name); err != nil {
		m.Registry.AddBufferType(cpu.BufferType())
	}
	hasCPU := false
	for _, b := range m.Registry.Backends() {
		if b.Name() == cpu.Name {
			hasCPU = true
			m.CPU, _ = b.(*cpu.Backend)
			break
		}
	}
	if !hasCPU {
		threads := o.Threads
		if threads <= 0 {
			threads = pool.DefaultThreads()
		}
		m.ownPool = pool.New(threads)
		m.CPU = cpu.New(m.ownPool, cpu.Options{Reference: o.Reference})
		m.Registry.AddBackend(m.CPU)
	}
	m.Sched = &backend.Scheduler{Registry: m.Registry, Profile: o.Profile}
	return nil
}

// loadWeights places every tensor of the file and imports it into the chosen buffer type, telling progress (when
// set) about the weights a buffer type converts.
func (m *Model) loadWeights(f *gguf.File, po placement.Options, progress func(done, total int64)) error {
	ws := make([]backend.WeightInfo, 0, len(f.Tensors))
	for _, ti := range f.Tensors {
		ws = append(ws, placement.Weight(ti.Name, ti.Type, ti.Ne))
	}
	plan, err := placement.Place(ws, m.Hyper.Layers, po, m.Registry)
	if err != nil {
		return fmt.Errorf("model: placing weights: %w", err)
	}
	m.Plan = plan
	var done, total int64
	for i, d := range plan.Decisions {
		if d.BufferType != cpu.Name {
			total += f.Tensors[i].Size
		}
	}
	for i, d := range plan.Decisions {
		ti := &f.Tensors[i]
		data := f.TensorData(ti)
		if data == nil {
			return fmt.Errorf("model: tensor %s has no data in %s", ti.Name, f.Path())
		}
		t := &graph.Tensor{Name: ti.Name, Type: ti.Type, Ne: ti.Ne, Layout: tensor.Plain, Data: data}
		if ti.Type == tensor.F32 {
			t.F32 = floatView(data)
		}
		bt, err := m.Registry.BufferType(d.BufferType)
		if err != nil {
			return fmt.Errorf("model: tensor %s: %w", ti.Name, err)
		}
		if err := bt.Import(t); err != nil {
			return fmt.Errorf("model: importing %s into %s: %w", ti.Name, d.BufferType, err)
		}
		m.weights[ti.Name] = t
		if d.BufferType != cpu.Name && progress != nil {
			done += ti.Size
			progress(done, total)
		}
	}
	return nil
}

// floatView reads little-endian float32 bytes in place when they are aligned (GGUF aligns tensor data to 32 bytes
// and the mapping to a page), and copies them otherwise.
func floatView(b []byte) []float32 {
	n := len(b) / 4
	if n == 0 {
		return []float32{}
	}
	if uintptr(unsafe.Pointer(&b[0]))%4 == 0 && littleEndian() {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
	}
	out := make([]float32, n)
	for i := range out {
		u := uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
		out[i] = *(*float32)(unsafe.Pointer(&u))
	}
	return out
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// Weight returns a loaded weight by its GGUF name.
func (m *Model) Weight(name string) (*graph.Tensor, bool) {
	t, ok := m.weights[name]
	return t, ok
}

// bindLayers finds each layer's weights by llama.cpp's names and checks their shapes against the hyperparameters.
func (m *Model) bindLayers() error {
	h := m.Hyper
	var err error
	get := func(name string, required bool, ne ...int) *graph.Tensor {
		t, ok := m.weights[name]
		if !ok {
			if required && err == nil {
				err = fmt.Errorf("model: %s: tensor %s is missing", h.Arch, name)
			}
			return nil
		}
		for i, n := range ne {
			if t.Ne[i] != n && err == nil {
				err = fmt.Errorf("model: tensor %s has shape %s, want %v from the hyperparameters", name, t.Shape(), ne)
			}
		}
		return t
	}
	q, kv := h.Heads*h.HeadDim, h.HeadsKV*h.HeadDim
	m.tokEmbd = get("token_embd.weight", true, h.Embd, h.Vocab)
	m.outNorm = get("output_norm.weight", true, h.Embd)
	m.output = get("output.weight", false, h.Embd, h.Vocab)
	if m.output == nil {
		m.output = m.tokEmbd // tied embeddings
	}
	m.layers = make([]layer, h.Layers)
	for i := range m.layers {
		l := &m.layers[i]
		l.n = layerNames(i)
		p := fmt.Sprintf("blk.%d.", i)
		l.attnNorm = get(p+"attn_norm.weight", true, h.Embd)
		l.wq = get(p+"attn_q.weight", true, h.Embd, q)
		l.wk = get(p+"attn_k.weight", true, h.Embd, kv)
		l.wv = get(p+"attn_v.weight", true, h.Embd, kv)
		l.wo = get(p+"attn_output.weight", true, q, h.Embd)
		l.bq = get(p+"attn_q.bias", h.Arch == "qwen2", q)
		l.bk = get(p+"attn_k.bias", h.Arch == "qwen2", kv)
		l.bv = get(p+"attn_v.bias", h.Arch == "qwen2", kv)
		l.bo = get(p+"attn_output.bias", false, h.Embd)
		if h.QKNorm {
			l.qNorm = get(p+"attn_q_norm.weight", true, h.HeadDim)
			l.kNorm = get(p+"attn_k_norm.weight", true, h.HeadDim)
		}
		l.ffnNorm = get(p+"ffn_norm.weight", true, h.Embd)
		if h.MoE() {
			l.router = get(p+"ffn_gate_inp.weight", true, h.Embd, h.Experts)
			l.gateExps = get(p+"ffn_gate_exps.weight", true, h.Embd, h.ExpertFFN, h.Experts)
			l.upExps = get(p+"ffn_up_exps.weight", true, h.Embd, h.ExpertFFN, h.Experts)
			l.downExps = get(p+"ffn_down_exps.weight", true, h.ExpertFFN, h.Embd, h.Experts)
		} else {
			l.gate = get(p+"ffn_gate.weight", true, h.Embd, h.FFN)
			l.up = get(p+"ffn_up.weight", true, h.Embd, h.FFN)
			l.down = get(p+"ffn_down.weight", true, h.FFN, h.Embd)
		}
	}
	return err
}

// NPast is the number of positions in the KV cache.
func (m *Model) NPast() int { return m.nPast }

// Reset empties the KV cache.
func (m *Model) Reset() { m.nPast = 0 }

// Close frees the scheduler's scratch copies (device memory, once a device backend exists) and stops the model's
// own worker pool. The GGUF file is the caller's to close, after the model.
func (m *Model) Close() {
	if m.Sched != nil {
		m.Sched.Release()
	}
	if m.ownPool != nil {
		m.ownPool.Close()
		m.ownPool = nil
	}
}

// Eval appends tokens to the KV cache and returns the logits of the last one. The slice is reused by the next
// call: copy it to keep it.
func (m *Model) Eval(ctx context.Context, tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("model: Eval of no tokens")
	}
	if err := m.eval(ctx, tokens, nil); err != nil {
		return nil, err
	}
	return m.logits, nil
}

// EvalAll is Eval returning the logits of every position: len(tokens) rows of Hyper.Vocab, newly allocated.
func (m *Model) EvalAll(ctx context.Context, tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("model: EvalAll of no tokens")
	}
	all := make([]float32, len(tokens)*m.Hyper.Vocab)
	if err := m.eval(ctx, tokens, all); err != nil {
		return nil, err
	}
	return all, nil
}

// eval runs tokens through the model in batches of at most m.Batch. all, when not nil, receives every position's
// logits; otherwise only the last position's are computed, into m.logits.
func (m *Model) eval(ctx context.Context, tokens []int32, all []float32) error {
	if m.nPast+len(tokens) > m.Ctx {
		return fmt.Errorf("model: %d cached + %d new tokens exceed the context of %d", m.nPast, len(tokens), m.Ctx)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= m.Hyper.Vocab {
			return fmt.Errorf("model: token %d at position %d is outside the vocabulary of %d", t, i, m.Hyper.Vocab)
		}
	}
	for start := 0; start < len(tokens); start += m.Batch {
		end := min(len(tokens), start+m.Batch)
		last := end == len(tokens)
		var out []float32
		if all != nil {
			out = all[start*m.Hyper.Vocab : end*m.Hyper.Vocab]
		} else if last {
			out = m.logits
		}
		if err := m.evalBatch(ctx, tokens[start:end], all != nil, out); err != nil {
			return err
		}
	}
	return nil
}

// evalBatch builds and runs the graph of one batch. allRows asks for logits at every position; out (when not nil)
// receives the logits computed.
func (m *Model) evalBatch(ctx context.Context, tokens []int32, allRows bool, out []float32) error {
	t0 := time.Now()
	b := m.b
	b.Reset()
	in := batch{
		ids:     b.Arena.NewI32("inp_tokens", len(tokens)),
		pos:     b.Arena.NewI32("inp_pos", len(tokens)),
		nPast:   m.nPast,
		allRows: allRows,
		logits:  out != nil,
	}
	copy(in.ids.I32, tokens)
	for i := range in.pos.I32 {
		in.pos.I32[i] = int32(m.nPast + i)
	}
	logits := m.forward(b, &in)
	n0 := 0
	if m.profiled != nil {
		n0 = len(m.profiled.Records)
	}
	if err := m.Sched.Run(ctx, b.Graph); err != nil {
		return err
	}
	if m.profiled != nil {
		// Everything in this pass outside the ops' own timings (building the graph, picking backends, copying the
		// logits) is overhead, so op times plus overhead add up to the wall time.
		defer func() {
			var ops time.Duration
			for _, r := range m.profiled.Records[n0:] {
				ops += r.Time
			}
			m.profiled.Overhead += max(0, time.Since(t0)-ops)
		}()
	}
	m.nPast += len(tokens)
	if out != nil {
		copy(out, logits.F32)
	}
	return nil
}

// batch is what a forward pass needs to know about the tokens it runs.
type batch struct {
	ids, pos *graph.Tensor // I32 [M]
	nPast    int           // positions already in the cache
	allRows  bool          // compute logits for every position, not just the last
	logits   bool          // compute logits at all (false for prompt batches before the last)
}

// M is the number of tokens in the batch.
func (in *batch) M() int { return in.ids.Ne[0] }

// maxCtx bounds the context so that cache sizes cannot overflow; it is far beyond any model's training context.
const maxCtx = 1 << 30

// KVBytes is the size of a KV cache of ctx positions whose elements are of type kv (F32 or F16): keys and values
// for every layer and KV head.
func (h Hyper) KVBytes(ctx int, kv tensor.DType) int64 {
	return 2 * int64(kv.BlockBytes()) * int64(h.Layers) * int64(ctx) * int64(h.HeadsKV) * int64(h.HeadDim)
}
