// Package cpu is the CPU backend: plain-Go reference kernels for every graph op, float32 activations, weights of
// any supported type decoded row by row as they are used, all run on one persistent worker pool. Outside reference
// mode, MUL_MAT and MUL_MAT_ID on Q4_0/Q8_0 weights use the simd package's quantized dot products, with the
// activations quantized to Q8_0 once per op (as llama.cpp does). It also computes the fused ops (graph.MulMats and
// the kinds after it), which do a chain of ops in one parallel section (fused.go).
//
// It is also the "CPU" buffer type, which takes every weight and keeps its plain GGUF bytes (large ones copied into
// huge pages when asked to, hugepages.go).
package cpu

import (
	"fmt"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// Name is the backend's and the buffer type's name.
const Name = "CPU"

// KernelReference names the plain-Go float32 kernels in profiles and assignments.
const KernelReference = "reference"

// Options configure the backend.
type Options struct {
	// Reference keeps every op on the float32 reference kernels (the oracle comparisons use it).
	Reference bool
}

// Backend computes graph ops on the CPU. Compute must not be called concurrently: the backend's scratch space is
// shared by the pool's workers for one op at a time.
type Backend struct {
	pool *pool.Pool
	opt  Options

	scratch [][]float32 // per worker, for decoded weight rows and attention scores
	q8      []byte      // activations quantized to Q8_0 for the fast path
	q8g     []byte      // the same, grouped by expert (MUL_MAT_ID)
	xg      []float32   // float activations grouped by expert (MUL_MAT_ID on float weights)
	tmp     []float32   // expert-grouped MUL_MAT_ID results before they are scattered
	groups  expertGroups
	fused   fusedScratch
	fe      firstErr // the workers' first error in the op running now
	jobs    jobs
}

// jobs are the ops' parallel sections, one value of each kind kept in the backend: an op fills in its job and
// hands the pool a pointer to it, so a decode step's sections allocate nothing (a capturing closure per section
// would be allocated every time). Ops run one at a time, and a fused op runs its steps one after another, so each
// value serves one section at a time.
type jobs struct {
	getRows  getRowsJob
	rmsNorm  rmsNormJob
	rope     ropeJob
	softMax  softMaxJob
	binary   binaryJob
	unary    unaryJob
	swiGLU   swiGLUJob
	topK     topKJob
	moeSum   moeSumJob
	storeKV  storeKVJob
	attnRef  attnRefJob
	attnFast attnFastJob
	matRef   matRefJob
	idRef    idRefJob
	quantize quantizeJob
	mat      matJob
	gather   gatherJob
	id       idJob
	mats     matsJob
	sum      sumJob
	sumOne   sumOneJob
}

// runJob hands the pool job j, then empties it, so the backend holds no op's slices between ops.
func runJob[J any, P interface {
	*J
	pool.Job
}](b *Backend, chunks int, j P) {
	b.pool.RunJob(chunks, j)
	var zero J
	*j = zero
}

var _ backend.Backend = (*Backend)(nil)

// New returns a CPU backend running on p.
func New(p *pool.Pool, o Options) *Backend {
	return &Backend{pool: p, opt: o, scratch: make([][]float32, p.Threads())}
}

// Name returns "CPU".
func (b *Backend) Name() string { return Name }

// Pool is the worker pool the backend runs on.
func (b *Backend) Pool() *pool.Pool { return b.pool }

// Reference reports whether every op runs on the float32 reference kernels.
func (b *Backend) Reference() bool { return b.opt.Reference }

// reserve makes every worker's scratch space hold at least n floats, before an op's section starts: which worker
// claims which chunk changes from one run to the next, so growing each buffer on first use would allocate on some
// later decode step, the first time that worker happened to claim a chunk of that op.
func (b *Backend) reserve(n int) {
	for w := range b.scratch {
		if len(b.scratch[w]) < n {
			b.scratch[w] = make([]float32, n)
		}
	}
}

// workerBuf returns worker w's scratch space of at least n floats. The op reserved it beforehand; growing here is
// a fallback.
func (b *Backend) workerBuf(w, n int) []float32 {
	if len(b.scratch[w]) < n {
		b.scratch[w] = make([]float32, n)
	}
	return b.scratch[w][:n]
}

// The reasons SupportsOp gives; constants, so that scheduling allocates nothing.
const (
	reasonOK        = "CPU computes every op on plain tensors in host memory"
	reasonUnknownOp = "the CPU backend has no kernel for this op"
)

// SupportsOp answers whether the CPU can compute op, whatever speed it would reach: MUL_MAT on a plain weight of a
// readable type is always supported. Tensors in a packed layout, or whose storage is not in host memory, are refused
// with the reason, so the scheduler looks for another backend.
func (b *Backend) SupportsOp(op *graph.Op) (bool, string) {
	if op.Kind > graph.MulMatIDSum {
		return false, reasonUnknownOp
	}
	for _, t := range op.Src {
		if t == nil {
			continue
		}
		if l := t.StorageLayout(); l != tensor.Plain {
			return false, fmt.Sprintf("tensor %s is in layout %q, which CPU kernels cannot read", t.Name, l)
		}
		if !hostData(t) {
			return false, fmt.Sprintf("tensor %s has no data in host memory (buffer %s)", t.Name, t.Buffer())
		}
		if !readable(t.Type) {
			return false, fmt.Sprintf("tensor %s has type %s, which CPU kernels cannot read", t.Name, t.Type)
		}
	}
	return true, reasonOK
}

func hostData(t *graph.Tensor) bool {
	switch t.Type {
	case tensor.F32:
		return t.F32 != nil
	case tensor.I32:
		return t.I32 != nil
	}
	return t.Data != nil
}

func readable(t tensor.DType) bool {
	switch t {
	case tensor.F32, tensor.I32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.Q6_K:
		return true
	}
	return false
}

// Compute runs op and names the kernel it used.
func (b *Backend) Compute(op *graph.Op) (string, error) {
	if op.Dst == nil {
		return "", fmt.Errorf("op %s %s has no destination", op.Kind, op.Name)
	}
	if err := checkLayout(op.Dst, op); err != nil {
		return "", err
	}
	for _, t := range op.Src {
		if t != nil {
			if err := checkLayout(t, op); err != nil {
				return "", err
			}
		}
	}
	var err error
	switch op.Kind {
	case graph.MulMat:
		return b.mulMat(op)
	case graph.MulMatID:
		return b.mulMatID(op)
	case graph.GetRows:
		err = b.getRows(op)
	case graph.RMSNorm:
		err = b.rmsNorm(op)
	case graph.RoPE:
		err = b.rope(op)
	case graph.SoftMax:
		return b.softMax(op)
	case graph.Add, graph.Mul:
		err = b.binary(op)
	case graph.SiLU, graph.Scale, graph.Copy:
		if err := b.unary(op); err != nil {
			return "", err
		}
		if op.Kind == graph.SiLU && !b.opt.Reference {
			return fastVariant(), nil // simd's vectorised exp
		}
	case graph.SwiGLU:
		return b.swiGLU(op)
	case graph.Attention:
		return b.attention(op)
	case graph.StoreKV:
		err = b.storeKV(op)
	case graph.TopK:
		err = b.topK(op)
	case graph.MoEWeights:
		err = b.moeWeights(op)
	case graph.MoESum:
		err = b.moeSum(op)
	case graph.MulMats:
		return b.mulMats(op)
	case graph.MulMatAdd:
		return b.mulMatAdd(op)
	case graph.MulMatSwiGLU:
		return b.mulMatSwiGLU(op)
	case graph.MulMatIDSwiGLU:
		return b.mulMatIDSwiGLU(op)
	case graph.MulMatIDSum:
		return b.mulMatIDSum(op)
	default:
		return "", fmt.Errorf("op %s %s: %s", op.Kind, op.Name, reasonUnknownOp)
	}
	return KernelReference, err
}

// src returns op.Src[i], or an error naming the op when it is missing.
func src(op *graph.Op, i int) (*graph.Tensor, error) {
	if i >= len(op.Src) || op.Src[i] == nil {
		return nil, fmt.Errorf("op %s %s: input %d is missing", op.Kind, op.Name, i)
	}
	return op.Src[i], nil
}

// f32s checks that t is an F32 tensor holding at least n elements.
func f32s(op *graph.Op, t *graph.Tensor, n int) ([]float32, error) {
	if t.Type != tensor.F32 {
		return nil, fmt.Errorf("op %s %s: tensor %s is %s, want f32", op.Kind, op.Name, t.Name, t.Type)
	}
	if len(t.F32) < n {
		return nil, fmt.Errorf("op %s %s: tensor %s holds %d floats, need %d", op.Kind, op.Name, t.Name, len(t.F32), n)
	}
	return t.F32[:n], nil
}

func i32s(op *graph.Op, t *graph.Tensor, n int) ([]int32, error) {
	if t.Type != tensor.I32 {
		return nil, fmt.Errorf("op %s %s: tensor %s is %s, want i32", op.Kind, op.Name, t.Name, t.Type)
	}
	if len(t.I32) < n {
		return nil, fmt.Errorf("op %s %s: tensor %s holds %d ints, need %d", op.Kind, op.Name, t.Name, len(t.I32), n)
	}
	return t.I32[:n], nil
}

// chunksFor splits n items into chunks of at least minPer items, aiming at about four chunks per worker so the
// atomic counter can even out uneven workers.
func (b *Backend) chunksFor(n, minPer int) (chunks, per int) {
	if n <= 0 {
		return 0, 0
	}
	per = max(minPer, (n+4*b.pool.Threads()-1)/(4*b.pool.Threads()))
	return (n + per - 1) / per, per
}

// BufferType returns the "CPU" buffer type: host memory in ggml's plain layout, taking every weight.
func BufferType() backend.BufferType { return bufferType{} }

type bufferType struct{}

func (bufferType) Name() string { return Name }
func (bufferType) IsHost() bool { return true }
func (bufferType) Accepts(w backend.WeightInfo) (bool, string) {
	return true, "CPU: plain " + w.Type.String()
}
func (bufferType) PackedBytes(w backend.WeightInfo) int64 { return w.Bytes() }

// Import keeps the weight's plain bytes where they are (usually a view of the mapped GGUF file), except that large
// quantized and half-precision weights are copied into huge pages when $TILELAB_HUGEPAGES=1 (see hugePages).
func (bufferType) Import(t *graph.Tensor) error {
	if t.Layout != "" && t.Layout != tensor.Plain {
		return fmt.Errorf("tensor %s: the CPU buffer type stores only the plain layout, not %q", t.Name, t.Layout)
	}
	switch t.Type {
	case tensor.F32:
		if len(t.F32) < t.Elems() {
			return fmt.Errorf("tensor %s: %d floats for shape %s", t.Name, len(t.F32), t.Shape())
		}
	default:
		if int64(len(t.Data)) < t.Bytes() {
			return fmt.Errorf("tensor %s: %d bytes for %s %s (need %d)", t.Name, len(t.Data), t.Type, t.Shape(), t.Bytes())
		}
	}
	if hugePages && t.Type != tensor.F32 && t.Type != tensor.I32 {
		// F32 weights also carry a float view of their bytes, which a copy would leave behind; they are small.
		if c := hugeCopy(t, t.Data[:t.Bytes()]); c != nil {
			t.Data = c
		}
	}
	t.Layout = tensor.Plain
	t.BufferType = Name
	return nil
}
