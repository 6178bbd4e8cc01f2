//go:build !amd64

package amx

import (
	"errors"

	"tilelab/amx/internal/sched"
)

func asmTileCall(w *workspace, pal *[64]byte, p sched.Plan, j *tileJob, int8, plain bool) error {
	return errors.New("no AMX tile kernels on this architecture")
}

func asmVecCall(w *workspace, j *vecJob, int8 bool) {}

func peakCall(w *workspace, int8 bool, iters int) {}
