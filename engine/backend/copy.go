package backend

import (
	"fmt"
	"unsafe"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// BufferReader is implemented by a backend that says which buffer types its kernels read and write directly. The
// scheduler copies an input the chosen backend cannot read into a buffer type it can, and gives it a scratch
// destination there when it cannot write the op's own. A backend without it is taken to read every buffer: the
// scheduler never copies for it, and its SupportsOp alone judges the buffers.
//
// Reads is about memory, not layouts: the CPU reads the AMX buffer type (host memory), and its SupportsOp still
// refuses a weight packed in an AMX layout.
type BufferReader interface {
	Reads(bufferType string) bool
}

// Copier moves tensors between buffer types. A backend or a buffer type may provide one (a device buffer type
// copies to and from host memory); between two host buffer types the scheduler copies the elements itself.
type Copier interface {
	// CanCopy reports whether Copy moves tensors from buffer type from to buffer type to.
	CanCopy(from, to string) bool
	// Copy copies src's elements into dst. Both own their storage (neither is a view), have the same type and
	// shape, and are in the plain layout. It returns the name of the copy kernel for profiles ("h2d", "d2h").
	Copy(dst, src *graph.Tensor) (kernel string, err error)
}

// Allocator is implemented by a buffer type that gives the scheduler scratch tensors: the copies of inputs moved
// into it and the destinations of ops computed there. Host buffer types need not implement it (the scheduler then
// uses ordinary Go memory); a device buffer type must, or nothing can be copied into it.
type Allocator interface {
	// Alloc gives t, whose Name, Type, Ne and BufferType are set and which is not a view, storage for its
	// elements in the plain layout (device memory in t.Extra, say). Its contents are undefined.
	Alloc(t *graph.Tensor) error
	// Free releases what Alloc gave t.
	Free(t *graph.Tensor)
}

// Window is the Extra of a view the scheduler made over a copy that has no host storage (in device memory): where
// the view's elements start in its source and how many it spans, in elements for F32 and I32 tensors (bytes for
// others). A view over host storage carries its window in its slices instead, as every view does.
type Window struct {
	Offset, Len int
}

// KernelHostCopy names the scheduler's own copy between host buffer types in profiles and assignments.
const KernelHostCopy = "host-copy"

// lookup is Registry.BufferType without the error, for the scheduler's hot path: nil when name is not registered.
func (r *Registry) lookup(name string) BufferType {
	for _, b := range r.bufferTypes {
		if b.Name() == name {
			return b
		}
	}
	return nil
}

// hostCopy copies the host slices of src into dst.
func hostCopy(dst, src *graph.Tensor) error {
	if dst.Type != src.Type || dst.Ne != src.Ne {
		return fmt.Errorf("copy of %s: %s%s into %s%s", src.Name, src.Type, src.Shape(), dst.Type, dst.Shape())
	}
	var m int
	switch src.Type {
	case tensor.F32:
		m = copy(dst.F32, src.F32)
		if m < src.Elems() {
			return fmt.Errorf("copy of %s: %d of its %d floats in host memory", src.Name, m, src.Elems())
		}
	case tensor.I32:
		m = copy(dst.I32, src.I32)
		if m < src.Elems() {
			return fmt.Errorf("copy of %s: %d of its %d ints in host memory", src.Name, m, src.Elems())
		}
	default:
		m = copy(dst.Data, src.Data)
		if int64(m) < src.Bytes() {
			return fmt.Errorf("copy of %s: %d of its %d bytes in host memory", src.Name, m, src.Bytes())
		}
	}
	return nil
}

// hostAlloc gives t Go memory for its elements.
func hostAlloc(t *graph.Tensor) {
	switch t.Type {
	case tensor.F32:
		t.F32 = make([]float32, t.Elems())
	case tensor.I32:
		t.I32 = make([]int32, t.Elems())
	default:
		t.Data = make([]byte, t.Bytes())
	}
}

// window finds where view v's elements lie in its source s: from its slices when both have host storage, else
// from a Window in v.Extra.
func window(v, s *graph.Tensor) (off, n int, ok bool) {
	switch {
	case len(v.F32) > 0 && len(s.F32) > 0:
		return sliceOffset(v.F32, s.F32)
	case len(v.I32) > 0 && len(s.I32) > 0:
		return sliceOffset(v.I32, s.I32)
	case len(v.Data) > 0 && len(s.Data) > 0:
		return sliceOffset(v.Data, s.Data)
	}
	if w, isW := v.Extra.(Window); isW {
		return w.Offset, w.Len, true
	}
	return 0, 0, false
}

// sliceOffset is the index in s where v starts, when v lies within s.
func sliceOffset[E any](v, s []E) (off, n int, ok bool) {
	var e E
	size := int(unsafe.Sizeof(e))
	d := int(uintptr(unsafe.Pointer(unsafe.SliceData(v))) - uintptr(unsafe.Pointer(unsafe.SliceData(s))))
	if d < 0 || d%size != 0 || d/size+len(v) > len(s) {
		return 0, 0, false
	}
	return d / size, len(v), true
}

// rebase points view vm (a copy of view v's header over copy m of v's source) at the same window of m.
func rebase(vm, m *graph.Tensor, off, n int) {
	vm.F32, vm.I32, vm.Data, vm.Extra = nil, nil, nil, nil
	switch {
	case m.F32 != nil:
		vm.F32 = m.F32[off : off+n : off+n]
	case m.I32 != nil:
		vm.I32 = m.I32[off : off+n : off+n]
	case m.Data != nil:
		vm.Data = m.Data[off : off+n : off+n]
	default:
		vm.Extra = Window{Offset: off, Len: n}
	}
}
