// Package backend defines buffer types (where a weight's bytes live and in which layout), backends (what computes
// an op), a registry of both, and the scheduler that gives each op of a graph to a backend.
//
// Two of the seed report's bugs are ruled out here by construction: SupportsOp is about capability only (the CPU
// backend can always compute MUL_MAT on plain weights; whether AMX accelerates is a separate, recorded decision),
// and every buffer lookup resolves views to their source (graph.Tensor.Buffer).
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

// Backend computes ops.
type Backend interface {
	Name() string
	// SupportsOp answers whether this backend can compute the op on the buffers and layouts its inputs
	// live in, with the reason. It says nothing about speed.
	SupportsOp(op *graph.Op) (ok bool, reason string)
	// Compute runs the op and returns the name of the kernel variant it used ("amx-int8-2x2", "avx512-vnni",
	// "reference"). A kernel that meets a layout it does not understand returns an error naming tensor, op and
	// layout.
	Compute(op *graph.Op) (kernel string, err error)
}
