package model

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fitsMemory refuses an allocation larger than the machine's physical memory, which would otherwise end the
// process with an out-of-memory fault (and a Jupyter kernel with every model it had loaded).
func fitsMemory(bytes int64) error {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil // no way to tell; the allocation will decide
	}
	total := int64(si.Totalram) * int64(si.Unit)
	if bytes > total {
		return fmt.Errorf("it would take %.1f GiB and this machine has %.1f GiB of memory; use a smaller context",
			float64(bytes)/(1<<30), float64(total)/(1<<30))
	}
	return nil
}
