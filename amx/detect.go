package amx

import (
	"fmt"
	"sync"

	"golang.org/x/sys/cpu"
)

// Status says whether AMX can run here, and why not when it cannot.
type Status struct {
	Tile, Int8, BF16 bool // CPUID: AMX-TILE, AMX-INT8, AMX-BF16
	OS               bool // XCR0 bits 17 and 18: the OS saves and restores tile state
	Permitted        bool // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) succeeded
	VNNI             bool // AVX-512F, BW and VNNI: the small-batch path runs in assembly
	Usable           bool // the tile kernels run on the hardware
	Reason           string
}

// Emulated reports whether tile kernels run in the emulator.
func (s Status) Emulated() bool { return !s.Usable }

// String is the one-line reason, e.g. "AMX usable (tile, int8, bf16; XCR0 tile state on; permission granted)" or
// "no AMX: using the emulator".
func (s Status) String() string { return s.Reason }

var (
	detectOnce sync.Once
	detected   Status
)

// Detect checks CPUID, XCR0 and asks the kernel for permission to use tile data, once per process (the
// permission is per process, so later calls return the first answer).
func Detect() Status {
	detectOnce.Do(func() { detected = detect() })
	return detected
}

func detect() Status {
	s := Status{
		Tile: cpu.X86.HasAMXTile, Int8: cpu.X86.HasAMXInt8, BF16: cpu.X86.HasAMXBF16,
		VNNI: hasVNNIAsm(),
	}
	switch {
	case !s.Tile || !s.Int8 || !s.BF16:
		s.Reason = "no AMX: using the emulator"
		if s.Tile {
			s.Reason = fmt.Sprintf("AMX incomplete (tile %v, int8 %v, bf16 %v): using the emulator", s.Tile, s.Int8, s.BF16)
		}
		return s
	}
	s.OS = osSupportsTiles()
	if !s.OS {
		s.Reason = "AMX present, but the OS does not enable tile state (XCR0 bits 17, 18): using the emulator"
		return s
	}
	if err := requestTilePermission(); err != nil {
		s.Reason = fmt.Sprintf("AMX present, permission refused by the kernel (%v): using the emulator", err)
		return s
	}
	s.Permitted = true
	if !hasTileAsm() {
		s.Reason = "AMX present, but this build has no tile kernels: using the emulator"
		return s
	}
	s.Usable = true
	s.Reason = "AMX usable (tile, int8, bf16; XCR0 tile state on; permission granted)"
	return s
}

// detectStatus is how the backend and the timed functions learn the status; a variable so tests can stand in
// for a machine with (or without) AMX. The buffer type never asks: its layout is the same everywhere.
var detectStatus = Detect
