// Package hw is the machine-specific half of engine/bench: a SetupFunc that registers AMX for the AMX modes when
// this machine really has it, and says why a mode cannot run otherwise (AMX only emulated, no GPU, no CUDA backend
// yet). It lives apart so engine/bench itself stays hardware-neutral.
package hw

import (
	"fmt"

	"tilelab/amx"
	"tilelab/cuda"
	"tilelab/engine/backend"
	"tilelab/engine/bench"
	"tilelab/engine/pool"
)

// Setup is the bench.SetupFunc for this build: cpu always runs; AMX modes run only on real AMX (the emulator is
// never timed); GPU modes need a GPU and a CUDA compute backend, which this build does not have yet.
func Setup(in bench.Instance, reg *backend.Registry, p *pool.Pool) (string, error) {
	if in.Mode.GPU() {
		if s := cuda.Probe(); !s.Available {
			return "no GPU: " + s.Reason, nil
		}
		return "no CUDA backend yet (the GPU is present; only placement knows CUDA so far)", nil
	}
	if in.Mode.AMX() {
		st := amx.Detect()
		if !st.Usable {
			return fmt.Sprintf("%v (%s)", amx.ErrEmulated, st.Reason), nil
		}
		if _, err := amx.Register(reg, p); err != nil {
			return "", err
		}
	}
	return "", nil
}

// Describe says, in one line, what this machine can run: for the header of a bench report.
func Describe() string {
	return fmt.Sprintf("AMX: %s; CUDA: %s", amx.Detect().Reason, cuda.Probe().Reason)
}
