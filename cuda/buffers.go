package cuda

import (
	"fmt"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/placement"
	"tilelab/engine/tensor"
)

// MatrixRowPadding is the element count CUDA buffers pad quantized rows to: llama.cpp's ggml-cuda allocates every
// quantized tensor with room for its last row to be read up to the next multiple of 512 elements
// (MATRIX_ROW_PADDING in ggml-cuda/common.cuh), so its matrix kernels never test for the row end. TileLab's CUDA
// kernels will read the same way; plans count that padding now.
const MatrixRowPadding = 512

// Alignment of tensors in device memory, as ggml-cuda's buffer type reports it (128 bytes).
const Alignment = 128

// HostAlignment of tensors in pinned host memory (ggml's host buffer alignment, 32 bytes).
const HostAlignment = 32

// bufferType is CUDA0 or CUDA_Host. Both hold weights in ggml's plain layout: the GPU's kernels read the GGUF
// block formats directly, so nothing is repacked.
type bufferType struct {
	name   string
	device int // the CUDA device ordinal for device memory; -1 for pinned host memory
	status func() Status
}

// DeviceBufferType is device memory on GPU 0, named "CUDA0" as llama.cpp names it.
func DeviceBufferType() backend.BufferType {
	return &bufferType{name: placement.CUDA0, device: 0, status: Probe}
}

// HostBufferType is pinned host memory, "CUDA_Host": weights that stay on the host but can be copied to the GPU
// at full PCIe speed when a large batch is offloaded.
func HostBufferType() backend.BufferType {
	return &bufferType{name: placement.CUDAHost, device: -1, status: Probe}
}

// Name is "CUDA0" or "CUDA_Host".
func (b *bufferType) Name() string { return b.name }

// IsHost is true for pinned host memory, which the CPU reads like any other memory.
func (b *bufferType) IsHost() bool { return b.device < 0 }

// Alignment is the byte alignment of each tensor in this buffer type.
func (b *bufferType) Alignment() int {
	if b.IsHost() {
		return HostAlignment
	}
	return Alignment
}

// Accepts takes every weight type TileLab understands (the kernels will read them as stored); only an unknown type
// is refused.
func (b *bufferType) Accepts(w backend.WeightInfo) (bool, string) {
	if !w.Type.Known() || w.Type.BlockSize() == 0 {
		return false, fmt.Sprintf("%s cannot hold tensor type %s", b.name, w.Type)
	}
	if b.IsHost() {
		return true, fmt.Sprintf("%s kept as stored in pinned host memory", w.Type)
	}
	return true, fmt.Sprintf("%s uploaded as stored", w.Type)
}

// PackedBytes is the GGUF size, plus in device memory the padding of a quantized tensor's last row to a multiple
// of MatrixRowPadding elements.
func (b *bufferType) PackedBytes(w backend.WeightInfo) int64 {
	n := w.Bytes()
	if !b.IsHost() && w.Type.Quantized() {
		if r := w.Ne[0] % MatrixRowPadding; r != 0 {
			n += int64(w.Type.RowBytes(MatrixRowPadding - r))
		}
	}
	return n
}

// Import refuses for now: uploading and pinning arrive with the CUDA backend. The error names the tensor and says
// why, including when there is no driver at all, so a load never proceeds with weights nowhere.
func (b *bufferType) Import(t *graph.Tensor) error {
	if t == nil {
		return fmt.Errorf("%s: import of a nil tensor", b.name)
	}
	if t.Layout != "" && t.Layout != tensor.Plain {
		return fmt.Errorf("%s: tensor %s is in layout %s; CUDA buffers take plain GGUF blocks only", b.name, t.Name, t.Layout)
	}
	if s := b.status(); !s.Available {
		return fmt.Errorf("%s: cannot import %s: %s", b.name, t.Name, s.Reason)
	}
	verb := "upload"
	if b.IsHost() {
		verb = "pin"
	}
	return fmt.Errorf("%s: cannot %s %s: TileLab's CUDA backend is not built yet (plans only)", b.name, verb, t.Name)
}

func init() {
	placement.SetGPUProbe(func() (bool, string) { s := Probe(); return s.Available, s.Reason })
}

// RegisterForPlan adds CUDA0 and CUDA_Host to a registry used for planning: a plan says what each buffer type would
// take on a machine that has it, so these need no GPU.
func RegisterForPlan(reg *backend.Registry) {
	reg.AddBufferType(DeviceBufferType())
	reg.AddBufferType(HostBufferType())
}

// CheckOptions refuses placement options that need a GPU (ngl > 0 or gpu=on) when the probe found none, with the
// probe's reason: a loader calls it before placing, so "--ngl 12" on a machine without CUDA fails saying so.
func CheckOptions(o placement.Options) error {
	return checkOptions(o, Probe())
}

func checkOptions(o placement.Options, s Status) error {
	if !o.GPUPresent() || s.Available {
		return nil
	}
	what := "gpu=on"
	if o.NGL > 0 {
		what = fmt.Sprintf("ngl=%d offloads layers to the GPU", o.NGL)
	}
	return fmt.Errorf("%s, but no GPU can be used here: %s", what, s.Reason)
}
