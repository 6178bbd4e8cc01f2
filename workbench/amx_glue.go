package workbench

import (
	"golang.org/x/sys/cpu"

	"tilelab/engine/backend"
)

// amxSummary says whether AMX runs here. Until the amx package lands it reports the CPUID bits only: CPUID is not
// permission, so it says so.
func amxSummary() string {
	if !cpu.X86.HasAMXTile {
		return "no (CPUID has no AMX-TILE; the emulator is for correctness only)"
	}
	return "CPUID reports AMX-TILE; OS permission not checked (the amx package has not landed)"
}

// checkTile validates a tile configuration for `set tile=`.
func checkTile(s string) error { return nil }

// amxPlanBufferType is the AMX buffer type for plans, or nil until the amx package lands.
func amxPlanBufferType() backend.BufferType { return nil }
