package cpu

import (
	"tilelab/engine/backend"
	"tilelab/engine/placement"
)

var _ backend.BufferReader = (*Backend)(nil)

// Reads reports whether the CPU's kernels address a buffer type's memory directly: ordinary memory ("CPU", and ""
// for tensors that name none), the AMX buffer type (host memory; its packed layouts are refused by SupportsOp, not
// here) and CUDA_Host (pinned host memory). Device memory is not read: the scheduler copies such a tensor into
// host memory before a CPU op reads it.
func (b *Backend) Reads(bufferType string) bool {
	switch bufferType {
	case Name, "", placement.AMX, placement.CUDAHost:
		return true
	}
	return false
}
