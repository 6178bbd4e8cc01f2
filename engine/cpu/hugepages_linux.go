package cpu

import (
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"tilelab/engine/graph"
)

const hugePageSize = 2 << 20

// thpAvailable reports whether the kernel gives huge pages to memory that asks for them (THP "always" or "madvise").
var thpAvailable = func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && !strings.Contains(string(b), "[never]")
}()

// hugeCopy returns a copy of src in anonymous memory advised MADV_HUGEPAGE before it is first touched, unmapped
// when owner becomes unreachable; or nil when huge pages are not on offer (the caller keeps src). Go heap memory
// will not do: the runtime has touched it in 4 KiB pages before the advice could apply (a test checks that the
// kernel really backs the copy with huge pages).
func hugeCopy(owner *graph.Tensor, src []byte) []byte {
	if !thpAvailable || len(src) < hugePagesMin {
		return nil
	}
	size := (len(src) + hugePageSize - 1) / hugePageSize * hugePageSize
	mem, err := unix.Mmap(-1, 0, size+hugePageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	if err := unix.Madvise(mem, unix.MADV_HUGEPAGE); err != nil {
		unix.Munmap(mem)
		return nil
	}
	off := 0
	if r := int(uintptr(unsafePointer(mem)) & (hugePageSize - 1)); r != 0 {
		off = hugePageSize - r
	}
	dst := mem[off : off+len(src) : off+len(src)]
	copy(dst, src)
	// The weight's kernels read dst through owner (a graph tensor the model keeps); once owner is gone, so is the
	// mapping. Nothing else keeps a slice of a CPU-buffer weight's bytes without its tensor.
	runtime.AddCleanup(owner, func(m []byte) { unix.Munmap(m) }, mem)
	return dst
}
