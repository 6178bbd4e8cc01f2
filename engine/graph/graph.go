// Package graph defines the op set and the tensors ops read and write. A model's forward pass is a Graph:
// a list of ops in execution order, which the backend scheduler hands to backends.
package graph

import (
	"fmt"

	"tilelab/engine/tensor"
)

// Tensor is an array in ggml's dimension order: Ne[0] is the contiguous row length, Ne[1] the number of rows,
// Ne[2] and Ne[3] outer dimensions (1 when unused).
//
// Storage: F32 tensors keep their elements in F32, I32 tensors in I32, every other type (weights) its raw bytes in
// Data, arranged as Layout says. A view shares its source's storage and names it in ViewSrc, so every buffer lookup
// goes through Source.
type Tensor struct {
	Name   string
	Type   tensor.DType
	Ne     [4]int
	Layout tensor.Layout // tensor.Plain unless a buffer type repacked the data

	Data []byte    // raw bytes of non-F32, non-I32 tensors
	F32  []float32 // elements of F32 tensors
	I32  []int32   // elements of I32 tensors

	BufferType string  // name of the buffer type that holds the storage: "CPU", "AMX", "CUDA0", "CUDA_Host"
	ViewSrc    *Tensor // the tensor whose storage a view shares; nil for tensors that own their storage
	Extra      any     // storage private to a buffer type (AMX tiles, device pointers)
}

// Source follows ViewSrc to the tensor that owns the storage.
func (t *Tensor) Source() *Tensor {
	for t.ViewSrc != nil {
		t = t.ViewSrc
	}
	return t
}

// Buffer is the name of the buffer type holding this tensor's storage, resolved through views.
// An empty name means ordinary CPU memory.
func (t *Tensor) Buffer() string {
	if b := t.Source().BufferType; b != "" {
		return b
	}
	return "CPU"
}

// StorageLayout is the layout of the bytes this tensor reads, resolved through views: a view of a packed tensor
// is packed, whatever its own Layout field says. An empty layout means tensor.Plain.
func (t *Tensor) StorageLayout() tensor.Layout {
	if l := t.Source().Layout; l != "" {
		return l
	}
	return tensor.Plain
}

// Elems is the number of elements.
func (t *Tensor) Elems() int { return t.Ne[0] * t.Ne[1] * max(t.Ne[2], 1) * max(t.Ne[3], 1) }

// Rows is the number of rows of Ne[0] elements.
func (t *Tensor) Rows() int { return t.Ne[1] * max(t.Ne[2], 1) * max(t.Ne[3], 1) }

// Bytes is the size of the plain (GGUF) representation.
func (t *Tensor) Bytes() int64 { return int64(t.Type.RowBytes(t.Ne[0])) * int64(t.Rows()) }

// Shape formats Ne as "[2048 512]", dropping trailing ones.
func (t *Tensor) Shape() string {
	n := 4
	for n > 1 && t.Ne[n-1] <= 1 {
		n--
	}
	return fmt.Sprint(t.Ne[:n])
}

// Kind names an operation. The op set, with ggml's semantics and dimension order (X and Dst are F32):
//
//	GetRows   Src[0]=table [K,V] (any type), Src[1]=ids I32 [M]        → Dst [K,M]: row ids[m] of the table, dequantized
//	MulMat    Src[0]=W [K,N], Src[1]=X [K,M]                           → Dst [N,M]: Dst[m][n] = Σk W[n][k]·X[m][k]
//	MulMatID  Src[0]=W [K,N,E] (E experts), Src[1]=X [K,U',M] with U' 1 (shared) or U,
//	          Src[2]=ids I32 [U,M] (the experts each token uses)      → Dst [N,U,M]: Dst[m][u][n] = Σk W[ids[m][u]][n][k]·X[m][u'][k]
//	RMSNorm   Src[0]=X [K,R], Src[1]=weight F32 [K] (optional)         → Dst [K,R]; Params.Eps
//	RoPE      Src[0]=X [D,H,M], Src[1]=positions I32 [M]               → Dst; Params.RopeTheta, Params.RopeNeoX, Params.RopeDims
//	SoftMax   Src[0]=X [K,R]                                           → Dst [K,R], row-wise
//	Add, Mul  Src[0]=A, Src[1]=B (B broadcast over rows when smaller)  → Dst
//	SiLU      Src[0]=X                                                 → Dst
//	SwiGLU    Src[0]=gate, Src[1]=up                                   → Dst = silu(gate)·up
//	Attention Src[0]=Q [D,Hq,M], Src[1]=K window [D,N,Hkv], Src[2]=V window [N,D,Hkv] → Dst [D·Hq,M]; causal,
//	          grouped-query (query head h reads KV head h/(Hq/Hkv)); N = Params.NPast+M positions are visible. The
//	          windows are views of KV caches (see StoreKV) and take their strides from the cache (ViewSrc): K cache
//	          [D,Ctx,Hkv] holds each head's keys as rows of D; V cache [Ctx,D,Hkv] holds each head's values
//	          transposed, a row over positions per dimension, so both products are plain matrix products.
//	StoreKV   Src[0]=X [D,Hkv,M], Dst=a view (ViewSrc) of a K or V cache → writes X into the cache at positions
//	          Params.NPast..+M; Params.Transposed selects the V layout [Ctx,D,Hkv] over the K layout [D,Ctx,Hkv]
//	Scale     Src[0]=X                                                 → Dst = X·Params.Scale
//	Copy      Src[0]=X                                                 → Dst (possibly another type or buffer)
//	TopK      Src[0]=X [K,R]                                           → Dst I32 [Params.K,R]: indices of the largest
//	MoEWeights Src[0]=probs [E,M], Src[1]=ids I32 [U,M]                → Dst [U,M]: probs[m][ids[m][u]], divided by
//	          their sum over u when Params.Normalize (qwen3moe's expert_weights_norm)
//	MoESum    Src[0]=X [N,U,M], Src[1]=weights [U,M]                   → Dst [N,M]: Dst[m] = Σu weights[m][u]·X[m][u]
//
// Fused ops: each computes what the chain of ops in its comment computes, in one pass (one parallel section instead
// of several, intermediates never written out). Builders emit them only where every weight they read is plain and in
// host memory; backends that do not know them refuse them, like any op they lack.
//
//	MulMats   Src[0..J-1]=W_j [K,N_j], Src[J]=X [K,M]                  → Dst [ΣN_j·M]: the J products W_j·X (MulMat),
//	          each [N_j,M] and contiguous, one after another (so a view splits them: q, k and v from one pass)
//	MulMatAdd Src[0]=W [K,N], Src[1]=X [K,M], Src[2]=R [N,M]           → Dst [N,M] = W·X + R (a projection and the
//	          residual add after it)
//	MulMatSwiGLU Src[0]=Wgate [K,N], Src[1]=Wup [K,N], Src[2]=X [K,M]  → Dst [N,M] = silu(Wgate·X)·(Wup·X)
//	MulMatIDSwiGLU Src[0]=Wgate [K,N,E], Src[1]=Wup [K,N,E], Src[2]=X [K,U',M], Src[3]=ids I32 [U,M]
//	          → Dst [N,U,M] = silu(MulMatID(Wgate,X,ids))·MulMatID(Wup,X,ids) (an MoE FFN's gate, up and activation)
//	MulMatIDSum Src[0]=W [K,N,E], Src[1]=X [K,U,M], Src[2]=ids I32 [U,M], Src[3]=weights [U,M], Src[4]=R [N,M]
//	          (optional) → Dst [N,M] = R + MoESum(MulMatID(W,X,ids), weights) (an MoE FFN's down projection, the
//	          weighted sum of the experts and the residual add)
type Kind uint8

const (
	GetRows Kind = iota
	MulMat
	MulMatID
	RMSNorm
	RoPE
	SoftMax
	Add
	Mul
	SiLU
	SwiGLU
	Attention
	Scale
	Copy
	TopK
	MoEWeights
	MoESum
	StoreKV
	MulMats
	MulMatAdd
	MulMatSwiGLU
	MulMatIDSwiGLU
	MulMatIDSum
	numKinds
)

var kindNames = [numKinds]string{"GET_ROWS", "MUL_MAT", "MUL_MAT_ID", "RMS_NORM", "ROPE", "SOFT_MAX", "ADD", "MUL",
	"SILU", "SWIGLU", "ATTENTION", "SCALE", "COPY", "TOP_K", "MOE_WEIGHTS", "MOE_SUM", "STORE_KV",
	"MUL_MATS", "MUL_MAT_ADD", "MUL_MAT_SWIGLU", "MUL_MAT_ID_SWIGLU", "MUL_MAT_ID_SUM"}

// String returns ggml's upper-case op name.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("OP(%d)", uint8(k))
}

// Params holds the scalar parameters ops take; each op reads the fields its comment names.
type Params struct {
	Eps       float32
	Scale     float32
	RopeTheta float32
	RopeNeoX  bool
	RopeDims  int
	K         int // TopK
	// Attention: the cache holds positions [0, NPast+M); KV heads are shared by Hq/Hkv query heads.
	NPast    int
	HeadsKV  int
	HeadDim  int
	Causal   bool
	Reserved [4]int // op-specific extras, documented where set
	// Normalize makes MoEWeights divide the chosen experts' probabilities by their sum.
	Normalize bool
	// Transposed makes StoreKV write the V cache layout.
	Transposed bool
}

// Op is one operation of a graph.
type Op struct {
	Kind   Kind
	Name   string // a readable name such as "blk.3.attn_q"
	Layer  int    // the layer it belongs to, or -1
	Dst    *Tensor
	Src    []*Tensor
	Params Params
}

// Graph is a forward pass: ops in execution order.
type Graph struct {
	Ops []*Op
}

// Add appends an op and returns its destination tensor.
func (g *Graph) Add(op *Op) *Tensor {
	g.Ops = append(g.Ops, op)
	return op.Dst
}
