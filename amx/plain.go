package amx

import (
	"fmt"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// PlainPolicy says when Import keeps a reference to a weight's plain GGUF bytes beside its packing, so that
// batches below the threshold run CPU mode's own kernel on them (see Backend).
type PlainPolicy uint8

const (
	// PlainIfMapped keeps the plain bytes when they are a view of a mapped file (a GGUF opened by gguf.Open):
	// keeping them costs no memory of the process (the file's pages are the kernel's page cache), and batches
	// below the threshold read those bytes exactly as CPU mode does, so they cost what CPU mode costs. As for CPU
	// mode's own weights, the file must stay open (mapped) while the weight is used.
	PlainIfMapped PlainPolicy = iota
	// PlainAlways keeps them whatever memory they are in; the caller must leave them unchanged while the weight
	// lives (tests and the calibration use it on weights made in memory).
	PlainAlways
	// PlainNever keeps only the packing: batches below the threshold run the VNNI path over the packed int8
	// (or the widened bf16) weights.
	PlainNever
)

// String names the policy as the workbench shows it.
func (p PlainPolicy) String() string {
	switch p {
	case PlainIfMapped:
		return "plain if mapped"
	case PlainAlways:
		return "plain always"
	case PlainNever:
		return "packed only"
	}
	return fmt.Sprintf("PlainPolicy(%d)", uint8(p))
}

// plainBlocks is a weight's plain GGUF bytes, in ggml's own block format of Type (Q4_0, Q8_0 blocks; F16, BF16
// values) and the CPU backend's plain layout: exactly what CPU mode reads. It is kept beside the packing, never
// instead of it: t.Data and t.Layout of an AMX weight always describe the packing, so a kernel that looks at
// the tensor sees the packed layout and nothing else, and these bytes are read as plain only through this
// struct, by the small-batch path (Backend.computePlain).
type plainBlocks struct {
	Type tensor.DType
	Ne   [4]int
	Data []byte // Type.RowBytes(Ne[0]) x rows, a view of the mapped file (or the caller's bytes, PlainAlways)

	// view is a plain tensor over Data for the CPU backend's kernels: made once at Import, so the small-batch
	// path allocates nothing per op.
	view *graph.Tensor
}

func newPlainBlocks(t *graph.Tensor) (*plainBlocks, error) {
	want := t.Bytes()
	if int64(len(t.Data)) < want {
		return nil, fmt.Errorf("%s %s holds %d bytes, want %d", t.Type, t.Shape(), len(t.Data), want)
	}
	data := t.Data[:want:want]
	p := &plainBlocks{Type: t.Type, Ne: t.Ne, Data: data}
	p.view = &graph.Tensor{Name: t.Name + " (plain)", Type: t.Type, Ne: t.Ne, Layout: tensor.Plain, Data: data, BufferType: Name}
	return p, nil
}

// keep reports whether Import keeps a reference to data under the policy.
func (p PlainPolicy) keep(data []byte) bool {
	switch p {
	case PlainAlways:
		return true
	case PlainNever:
		return false
	}
	return fileMapped(data)
}
