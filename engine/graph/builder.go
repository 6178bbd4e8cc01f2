package graph

import (
	"fmt"

	"tilelab/engine/tensor"
)

// Arena hands out the activation tensors and ops of one forward pass from storage kept across passes, so that
// building the same graph again (one decode step after another) allocates nothing once the arena has warmed up.
// Everything it handed out is invalid after Reset.
//
// Storage comes from three regions: one for everything outside the layers (inputs, embeddings, the head) and two
// that the layers take in turn (even and odd). Entering layer l (SetLayer) starts its region over, reusing the
// storage of layer l-2, whose values layer l-1 has consumed: so a graph builder must not read, in layer l, a
// tensor made in layer l-2 or earlier (the layers' chain of residuals never does). The arena then holds two layers'
// activations rather than all of them: for a 512-token prompt of a 48-layer model, tens of megabytes rather than
// gigabytes that the first passes would have to fault in.
type Arena struct {
	regions [3]region // outside the layers, even layers, odd layers
	cur     int       // the region handing out storage
	in      int       // 1 + the layer of the last SetLayer (0: outside the layers, as a new arena is)

	tensors slab[Tensor]
	ops     slab[Op]
	srcs    []*Tensor // backing for Op.Src lists
	srcOff  int
	srcNeed int
}

// slab hands out pointers to T from fixed-size chunks; chunks are never reallocated, so pointers stay valid.
type slab[T any] struct {
	chunks [][]T
	n      int
}

const slabChunk = 256

func (s *slab[T]) get() *T {
	c, i := s.n/slabChunk, s.n%slabChunk
	if c == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, slabChunk))
	}
	s.n++
	p := &s.chunks[c][i]
	var zero T
	*p = zero
	return p
}

// region is one stretch of the arena's storage: a main block per element type, a cursor into it, what overflowed
// it since the cursor last started over (handed out from blocks of their own), and the most any use needed.
type region struct {
	f32             []float32
	f32Off, f32More int
	f32Peak         int
	i32             []int32
	i32Off, i32More int
	i32Peak         int
}

// restart notes what the region's last use needed and starts its cursors over.
func (r *region) restart() {
	r.f32Peak = max(r.f32Peak, r.f32Off+r.f32More)
	r.i32Peak = max(r.i32Peak, r.i32Off+r.i32More)
	r.f32Off, r.f32More, r.i32Off, r.i32More = 0, 0, 0, 0
}

// Reset makes all storage available again. A region that overflowed during the last pass gets one main block as
// large as its largest use, so the next pass of the same shape fits without allocating.
func (a *Arena) Reset() {
	for i := range a.regions {
		r := &a.regions[i]
		r.restart()
		if r.f32Peak > len(r.f32) {
			r.f32 = make([]float32, r.f32Peak)
		}
		if r.i32Peak > len(r.i32) {
			r.i32 = make([]int32, r.i32Peak)
		}
		r.f32Peak, r.i32Peak = 0, 0
	}
	a.cur, a.in = 0, 0
	if a.srcNeed > len(a.srcs) {
		a.srcs = make([]*Tensor, a.srcNeed)
	}
	a.srcOff, a.srcNeed = 0, 0
	a.tensors.n, a.ops.n = 0, 0
}

// SetLayer makes the tensors handed out next belong to layer l (-1: outside the layers). Entering a layer starts
// its region over (see Arena); staying in the same layer changes nothing.
func (a *Arena) SetLayer(l int) {
	if l < 0 {
		l = -1
	}
	if l+1 == a.in {
		return
	}
	a.in = l + 1
	if l < 0 {
		a.cur = 0
		return
	}
	a.cur = 1 + l%2
	a.regions[a.cur].restart()
}

// floats returns n floats, not zeroed.
func (a *Arena) floats(n int) []float32 {
	r := &a.regions[a.cur]
	if r.f32Off+n <= len(r.f32) {
		s := r.f32[r.f32Off : r.f32Off+n : r.f32Off+n]
		r.f32Off += n
		return s
	}
	r.f32More += n
	return make([]float32, n)
}

func (a *Arena) ints(n int) []int32 {
	r := &a.regions[a.cur]
	if r.i32Off+n <= len(r.i32) {
		s := r.i32[r.i32Off : r.i32Off+n : r.i32Off+n]
		r.i32Off += n
		return s
	}
	r.i32More += n
	return make([]int32, n)
}

// Floats is the number of float32 values the arena's main blocks hold: what a pass of the shapes seen so far
// keeps allocated between passes.
func (a *Arena) Floats() int {
	n := 0
	for i := range a.regions {
		n += len(a.regions[i].f32)
	}
	return n
}

func (a *Arena) srcList(ts ...*Tensor) []*Tensor {
	n := len(ts)
	a.srcNeed += n
	var s []*Tensor
	if a.srcOff+n <= len(a.srcs) {
		s = a.srcs[a.srcOff : a.srcOff+n : a.srcOff+n]
		a.srcOff += n
	} else {
		s = make([]*Tensor, n)
	}
	copy(s, ts)
	return s
}

// NewF32 returns an F32 tensor of the given shape (missing dimensions are 1) whose contents are undefined.
func (a *Arena) NewF32(name string, ne ...int) *Tensor {
	t := a.tensors.get()
	t.Name, t.Type, t.Layout, t.Ne = name, tensor.F32, tensor.Plain, shape(ne)
	t.F32 = a.floats(t.Elems())
	return t
}

// NewI32 returns an I32 tensor of the given shape whose contents are undefined.
func (a *Arena) NewI32(name string, ne ...int) *Tensor {
	t := a.tensors.get()
	t.Name, t.Type, t.Layout, t.Ne = name, tensor.I32, tensor.Plain, shape(ne)
	t.I32 = a.ints(t.Elems())
	return t
}

// View returns a tensor sharing src's storage: elements [off, off+prod(ne)) of an F32 or I32 tensor, with a new
// shape. It panics on a view outside src, which is a bug in the graph builder, not bad input.
func (a *Arena) View(src *Tensor, off int, ne ...int) *Tensor {
	t := a.tensors.get()
	t.Name, t.Type, t.Layout, t.Ne, t.ViewSrc = src.Name, src.Type, src.Layout, shape(ne), src
	n := t.Elems()
	switch src.Type {
	case tensor.F32:
		if off < 0 || off+n > len(src.F32) {
			panic(fmt.Sprintf("graph: view [%d,%d) outside %s of %d elements", off, off+n, src.Name, len(src.F32)))
		}
		t.F32 = src.F32[off : off+n : off+n]
	case tensor.I32:
		if off < 0 || off+n > len(src.I32) {
			panic(fmt.Sprintf("graph: view [%d,%d) outside %s of %d elements", off, off+n, src.Name, len(src.I32)))
		}
		t.I32 = src.I32[off : off+n : off+n]
	default:
		panic("graph: views of " + src.Type.String() + " tensors are not supported")
	}
	return t
}

func shape(ne []int) [4]int {
	s := [4]int{1, 1, 1, 1}
	copy(s[:], ne)
	return s
}

// Builder appends ops to a graph, taking their destinations from an arena. Each method names the op, tags it with
// the builder's current Layer, and returns the destination tensor, so a forward pass reads as a chain of calls.
type Builder struct {
	Graph *Graph
	Arena *Arena
	Layer int // the layer the next ops belong to; -1 outside the layers (set it with SetLayer)
}

// NewBuilder returns a builder over an empty graph and a fresh arena.
func NewBuilder() *Builder { return &Builder{Graph: &Graph{}, Arena: &Arena{}, Layer: -1} }

// SetLayer tags the ops built next with layer l (-1: outside the layers) and moves the arena to that layer's
// storage, which the arena reuses from layer l-2 on (see Arena).
func (b *Builder) SetLayer(l int) {
	b.Layer = l
	b.Arena.SetLayer(l)
}

// Reset empties the graph and the arena, keeping their storage for the next pass.
func (b *Builder) Reset() {
	b.Graph.Ops = b.Graph.Ops[:0]
	b.Arena.Reset()
	b.Layer = -1
}

func (b *Builder) op(k Kind, name string, dst *Tensor, p Params, src ...*Tensor) *Tensor {
	o := b.Arena.ops.get()
	o.Kind, o.Name, o.Layer, o.Dst, o.Params = k, name, b.Layer, dst, p
	o.Src = b.Arena.srcList(src...)
	return b.Graph.Add(o)
}

// GetRows gathers rows ids of table (any type) into an F32 tensor [K, len(ids)].
func (b *Builder) GetRows(name string, table, ids *Tensor) *Tensor {
	return b.op(GetRows, name, b.Arena.NewF32(name, table.Ne[0], ids.Elems()), Params{}, table, ids)
}

// MulMat computes w·x for a weight w [K,N] and activations x [K,M...], giving [N,M...].
func (b *Builder) MulMat(name string, w, x *Tensor) *Tensor {
	return b.op(MulMat, name, b.Arena.NewF32(name, w.Ne[1], x.Ne[1], x.Ne[2], x.Ne[3]), Params{}, w, x)
}

// MulMatID computes, for each token m and slot u, expert ids[m][u]'s matrix times x[m][u] (or x[m] when x has one
// slot per token): w [K,N,E], x [K,U or 1,M], ids [U,M] give [N,U,M].
func (b *Builder) MulMatID(name string, w, x, ids *Tensor) *Tensor {
	return b.op(MulMatID, name, b.Arena.NewF32(name, w.Ne[1], ids.Ne[0], ids.Ne[1]), Params{}, w, x, ids)
}

// RMSNorm normalises each row of x by its root mean square and multiplies by weight (nil: no weight).
func (b *Builder) RMSNorm(name string, x, weight *Tensor, eps float32) *Tensor {
	dst := b.Arena.NewF32(name, x.Ne[:]...)
	if weight == nil {
		return b.op(RMSNorm, name, dst, Params{Eps: eps}, x)
	}
	return b.op(RMSNorm, name, dst, Params{Eps: eps}, x, weight)
}

// RoPE rotates the first dims elements of each head of x [D,H,M] by the positions pos [M]; neox pairs element i
// with i+dims/2 (NeoX, Qwen), otherwise 2i with 2i+1 (LLaMA).
func (b *Builder) RoPE(name string, x, pos *Tensor, theta float32, dims int, neox bool) *Tensor {
	return b.op(RoPE, name, b.Arena.NewF32(name, x.Ne[:]...), Params{RopeTheta: theta, RopeDims: dims, RopeNeoX: neox}, x, pos)
}

// SoftMax is a row-wise softmax.
func (b *Builder) SoftMax(name string, x *Tensor) *Tensor {
	return b.op(SoftMax, name, b.Arena.NewF32(name, x.Ne[:]...), Params{}, x)
}

// Add is x+y, with y repeated over rows when it is smaller.
func (b *Builder) Add(name string, x, y *Tensor) *Tensor {
	return b.op(Add, name, b.Arena.NewF32(name, x.Ne[:]...), Params{}, x, y)
}

// Mul is x·y elementwise, with y repeated over rows when it is smaller.
func (b *Builder) Mul(name string, x, y *Tensor) *Tensor {
	return b.op(Mul, name, b.Arena.NewF32(name, x.Ne[:]...), Params{}, x, y)
}

// SiLU is x·sigmoid(x).
func (b *Builder) SiLU(name string, x *Tensor) *Tensor {
	return b.op(SiLU, name, b.Arena.NewF32(name, x.Ne[:]...), Params{}, x)
}

// SwiGLU is silu(gate)·up.
func (b *Builder) SwiGLU(name string, gate, up *Tensor) *Tensor {
	return b.op(SwiGLU, name, b.Arena.NewF32(name, gate.Ne[:]...), Params{}, gate, up)
}

// Scale is x·s.
func (b *Builder) Scale(name string, x *Tensor, s float32) *Tensor {
	return b.op(Scale, name, b.Arena.NewF32(name, x.Ne[:]...), Params{Scale: s}, x)
}

// Copy copies x into dst (a view into a cache, say) and returns dst.
func (b *Builder) Copy(name string, x, dst *Tensor) *Tensor {
	return b.op(Copy, name, dst, Params{}, x)
}

// Attention computes causal grouped-query attention of q [D,Hq,M] over the KV caches k ([D,Ctx,Hkv]) and v
// ([Ctx,D,Hkv], transposed), whose positions [0, nPast+M) are filled; query m sits at position nPast+m. The result
// is [D·Hq, M]. The op reads windows of the caches covering the visible positions.
func (b *Builder) Attention(name string, q, k, v *Tensor, nPast int, scale float32) *Tensor {
	n := nPast + q.Ne[2]
	kw := b.window(k, k.Ne[0], n, k.Ne[2])
	vw := b.window(v, n, v.Ne[1], v.Ne[2])
	p := Params{NPast: nPast, HeadsKV: k.Ne[2], HeadDim: q.Ne[0], Causal: true, Scale: scale}
	return b.op(Attention, name, b.Arena.NewF32(name, q.Ne[0]*q.Ne[1], q.Ne[2]), p, q, kw, vw)
}

// StoreKV writes x [D,Hkv,M] into a K cache [D,Ctx,Hkv] (or, transposed, a V cache [Ctx,D,Hkv]) at positions
// nPast.., and returns the window it wrote.
func (b *Builder) StoreKV(name string, x, cache *Tensor, nPast int, transposed bool) *Tensor {
	d, h, m := x.Ne[0], x.Ne[1], x.Ne[2]
	var w *Tensor
	if transposed {
		w = b.window(cache, m, d, h)
	} else {
		w = b.window(cache, d, m, h)
	}
	return b.op(StoreKV, name, w, Params{NPast: nPast, Transposed: transposed}, x)
}

// window is a view of part of a cache: its shape says which part (and so how many bytes an op touches), while
// its storage stays the whole cache, whose own shape gives the strides.
func (b *Builder) window(cache *Tensor, ne ...int) *Tensor {
	t := b.Arena.tensors.get()
	t.Name, t.Type, t.Layout, t.Ne, t.ViewSrc, t.F32, t.Data = cache.Name, cache.Type, cache.Layout, shape(ne), cache, cache.F32, cache.Data
	return t
}

// TopK gives the indices of the k largest elements of each row of x, largest first.
func (b *Builder) TopK(name string, x *Tensor, k int) *Tensor {
	return b.op(TopK, name, b.Arena.NewI32(name, k, x.Rows()), Params{K: k}, x)
}

// MoEWeights picks each token's chosen expert probabilities, renormalised to sum to one when normalize is set.
func (b *Builder) MoEWeights(name string, probs, ids *Tensor, normalize bool) *Tensor {
	return b.op(MoEWeights, name, b.Arena.NewF32(name, ids.Ne[0], ids.Ne[1]), Params{Normalize: normalize}, probs, ids)
}

// MoESum adds each token's expert outputs x [N,U,M] weighted by weights [U,M], giving [N,M].
func (b *Builder) MoESum(name string, x, weights *Tensor) *Tensor {
	return b.op(MoESum, name, b.Arena.NewF32(name, x.Ne[0], x.Ne[2]), Params{}, x, weights)
}

// MulMats computes the products of up to seven weights [K,N_j] with the same activations x [K,M] in one op. It
// returns the op's destination, which holds the products one after another; MulMatsPart views product j.
func (b *Builder) MulMats(name string, x *Tensor, ws ...*Tensor) *Tensor {
	var src [8]*Tensor // on the stack: building a decode step's graph allocates nothing
	if len(ws) == 0 || len(ws) >= len(src) {
		panic(fmt.Sprintf("graph: MulMats %s takes 1 to %d weights, not %d", name, len(src)-1, len(ws)))
	}
	total := 0
	for j, w := range ws {
		total += w.Ne[1]
		src[j] = w
	}
	src[len(ws)] = x
	return b.op(MulMats, name, b.Arena.NewF32(name, total*x.Rows()), Params{}, src[:len(ws)+1]...)
}

// MulMatsPart views product j of a MulMats destination as [N_j, x's outer dimensions].
func (b *Builder) MulMatsPart(dst *Tensor, j int) *Tensor {
	op := b.Graph.Ops[len(b.Graph.Ops)-1]
	for i := len(b.Graph.Ops) - 1; i >= 0 && op.Dst != dst; i-- {
		op = b.Graph.Ops[i]
	}
	if op.Kind != MulMats || op.Dst != dst || j < 0 || j >= len(op.Src)-1 {
		panic(fmt.Sprintf("graph: MulMatsPart(%s, %d) names no product of a MulMats op", dst.Name, j))
	}
	x := op.Src[len(op.Src)-1]
	off := 0
	for _, w := range op.Src[:j] {
		off += w.Ne[1] * x.Rows()
	}
	return b.Arena.View(dst, off, op.Src[j].Ne[1], x.Ne[1], x.Ne[2], x.Ne[3])
}

// MulMatAdd computes w·x + r for a weight w [K,N], activations x [K,M...] and r [N,M...].
func (b *Builder) MulMatAdd(name string, w, x, r *Tensor) *Tensor {
	return b.op(MulMatAdd, name, b.Arena.NewF32(name, w.Ne[1], x.Ne[1], x.Ne[2], x.Ne[3]), Params{}, w, x, r)
}

// MulMatSwiGLU computes silu(gate·x)·(up·x) for weights [K,N] and activations x [K,M...], giving [N,M...].
func (b *Builder) MulMatSwiGLU(name string, gate, up, x *Tensor) *Tensor {
	return b.op(MulMatSwiGLU, name, b.Arena.NewF32(name, gate.Ne[1], x.Ne[1], x.Ne[2], x.Ne[3]), Params{}, gate, up, x)
}

// MulMatIDSwiGLU computes silu(MulMatID(gate))·MulMatID(up) for expert stacks gate and up [K,N,E], x [K,U or 1,M]
// and ids [U,M], giving [N,U,M].
func (b *Builder) MulMatIDSwiGLU(name string, gate, up, x, ids *Tensor) *Tensor {
	return b.op(MulMatIDSwiGLU, name, b.Arena.NewF32(name, gate.Ne[1], ids.Ne[0], ids.Ne[1]), Params{}, gate, up, x, ids)
}

// MulMatIDSum computes r + Σu weights[m][u]·(w[ids[m][u]]·x[m][u]) for an expert stack w [K,N,E], x [K,U,M], ids
// and weights [U,M], and r [N,M] (nil: no residual), giving [N,M].
func (b *Builder) MulMatIDSum(name string, w, x, ids, weights, r *Tensor) *Tensor {
	dst := b.Arena.NewF32(name, w.Ne[1], ids.Ne[1])
	if r == nil {
		return b.op(MulMatIDSum, name, dst, Params{}, w, x, ids, weights)
	}
	return b.op(MulMatIDSum, name, dst, Params{}, w, x, ids, weights, r)
}
