package amx

import (
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/placement"
)

var _ backend.BufferReader = (*Backend)(nil)

// Reads reports whether the AMX backend's kernels address a buffer type's memory directly: its own (the packed
// weights), and the host memory activations live in ("CPU", "" for tensors that name none, CUDA_Host). An
// activation in device memory is copied into host memory by the scheduler before an AMX op reads it.
func (b *Backend) Reads(bufferType string) bool {
	switch bufferType {
	case Name, cpu.Name, "", placement.CUDAHost:
		return true
	}
	return false
}
