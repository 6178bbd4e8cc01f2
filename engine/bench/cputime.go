package bench

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ProcessUsage is the CPU time (user and system) this process has used so far and the major page faults it has
// taken (pages read from disk), or zeros where the OS will not say.
func ProcessUsage() (cpu time.Duration, majorFaults int64) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Majflt
}

// ReadFromDisk says, for a measurement that took faults major page faults, that its timings include reading
// weights from disk: a mapped model not (or no longer) in the page cache. It returns "" for none.
func ReadFromDisk(faults int64) string {
	if faults <= 0 {
		return ""
	}
	return fmt.Sprintf("%d major page faults while measuring: weights were read from disk (the file not in the "+
		"page cache), so these timings include that I/O", faults)
}

// shortOfCPU says, for a row measured with threads workers that used cpus CPUs on average (process CPU time over
// wall time), whether the process was starved: the pool's workers spin between ops, so a healthy run keeps about
// one CPU per thread busy, and a run that got less than half of them measured the shortage (a CPU quota on the
// container, or other load on the machine) more than the kernels. It returns "" when nothing is wrong.
func shortOfCPU(threads int, cpus float64) string {
	if threads < 2 || cpus <= 0 || cpus >= float64(threads)/2 {
		return ""
	}
	return fmt.Sprintf("the process got %.1f of the %d CPUs its threads need, on average (a CPU quota or other load): "+
		"these timings measure that shortage", cpus, threads)
}
