package cpu

import (
	"os"
	"unsafe"
)

// hugePagesMin is the smallest weight worth copying into huge pages: a few of them per weight at least, and none
// of the norms and biases.
const hugePagesMin = 4 << 20

// hugePages makes the CPU buffer type copy large weights into memory backed by transparent huge pages (where the
// OS offers them) instead of reading them from the file mapping's 4 KiB pages. Decoding streams every weight once
// per token, and with 4 KiB pages the hardware prefetchers stop at each page boundary and every page costs a TLB
// walk: one thread's Q4_0 GEMV streamed 1.17x faster from huge pages on the 2-core AMD EPYC dev machine
// (BenchmarkGEMVHugePages). The copy costs load time and, while the file stays in the page cache, as much memory
// again as the weights take; and AMX mode, whose small batches read the file mapping, would then stream from other
// pages than CPU mode does. So it is opt-in until measured on the accelerator machine: $TILELAB_HUGEPAGES=1.
var hugePages = os.Getenv("TILELAB_HUGEPAGES") == "1"

// unsafePointer is the address of b's first byte.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
