// Package backend defines buffer types (where a weight's bytes live and in which layout), backends (what computes
// an op), a registry of both, and the scheduler that gives each op of a graph to a backend and moves tensors
// between buffer types where the backend cannot read them.
//
// Two of the seed report's bugs are ruled out here by construction: SupportsOp is about capability only (the CPU
// backend can always compute MUL_MAT on plain weights; whether AMX accelerates is a separate, recorded decision),
// and every buffer lookup resolves views to their source (graph.Tensor.Buffer).
//
// Moving tensors (copy.go, scheduler.go): a backend says which buffer types it reads with BufferReader; a buffer
// type (or backend) that can move tensors to and from other memory provides a Copier, and one that can hold the
// scheduler's scratch tensors an Allocator (host buffer types need neither: the scheduler copies host memory and
// allocates Go memory itself). The scheduler asks each backend's SupportsOp about the op as that backend would see
// it, with inputs in buffers it reads; it prefers a backend that needs no copy, then the one that moves the fewest
// bytes. Each copy is an Assignment and a profile record of a COPY op with its bytes and reason. A packed layout
// is never copied out of its buffer type: the backend that would need it refuses instead.
package backend

import (
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// WeightInfo describes a weight by its metadata alone, so placement can run without reading any weight bytes.
type WeightInfo struct {
	Name  string       // GGUF tensor name, e.g. "blk.3.ffn_gate_exps.weight"
	Type  tensor.DType // GGUF element type
	Ne    [4]int       // ggml dimension order
	Layer int          // index of the repeating layer it belongs to, or -1 (token_embd, output_norm, output)
	Op    graph.Kind   // the op that consumes it: MulMat, MulMatID, GetRows, RMSNorm ...
}

// Bytes is the weight's size in the GGUF file.
func (w WeightInfo) Bytes() int64 {
	rows := int64(w.Ne[1]) * int64(max(w.Ne[2], 1)) * int64(max(w.Ne[3], 1))
	return int64(w.Type.RowBytes(w.Ne[0])) * rows
}

// BufferType is a kind of memory weights can be placed in: "CPU", "AMX", "CUDA0", "CUDA_Host".
type BufferType interface {
	Name() string
	// IsHost reports whether the CPU can address the memory directly.
	IsHost() bool
	// Accepts reports whether this buffer type can hold the weight, with the reason either way
	// ("Q4_0, ne0 % 32 == 0", "F32 tensors are not packed for AMX").
	Accepts(w WeightInfo) (ok bool, reason string)
	// PackedBytes is the weight's size once stored here (equal to w.Bytes() unless the buffer type repacks it).
	PackedBytes(w WeightInfo) int64
	// Import takes a weight whose Data holds its plain GGUF bytes and stores it in this buffer type: repacking
	// (setting t.Layout), uploading or pinning, and setting t.BufferType. It errors rather than store a layout
	// no backend can read.
	Import(t *graph.Tensor) error
}

// Backend computes ops. A backend that reads only some buffer types (a GPU's device memory) also implements
// BufferReader, so the scheduler copies its inputs in and its results out.
type Backend interface {
	Name() string
	// SupportsOp answers whether this backend can compute the op on the buffers and layouts its inputs
	// live in, with the reason. It says nothing about speed. The scheduler asks with the op bound to the tensors
	// the backend would get: inputs it cannot read replaced by copies in buffers it reads (not yet filled), and a
	// destination it cannot write by a scratch tensor's header (no storage yet) in such a buffer.
	SupportsOp(op *graph.Op) (ok bool, reason string)
	// Compute runs the op and returns the name of the kernel variant it used ("amx-int8-2x2", "avx512-vnni",
	// "reference"). A kernel that meets a layout it does not understand returns an error naming tensor, op and
	// layout.
	Compute(op *graph.Op) (kernel string, err error)
}
