package workbench

import (
	"tilelab/amx"
	"tilelab/engine/backend"
)

// amxSummary says whether AMX runs here and, when it does not, why (CPUID bits are not permission: the amx
// package asks the OS).
func amxSummary() string { return amx.Detect().String() }

// checkTile validates a tile configuration for `set tile=`.
func checkTile(s string) error {
	if s == "default" {
		return nil
	}
	c, err := amx.ParseTileConfig(s)
	if err != nil {
		return err
	}
	return c.Validate()
}

// amxPlanBufferType is the AMX buffer type for plans: its rule and packed sizes need no AMX hardware.
func amxPlanBufferType() backend.BufferType { return amx.NewBufferType() }
