package hw

import (
	"strings"
	"testing"

	"tilelab/amx"
	"tilelab/cuda"
	"tilelab/engine/backend"
	"tilelab/engine/bench"
	"tilelab/engine/pool"
)

func TestSetup(t *testing.T) {
	p := pool.New(1)
	defer p.Close()
	t.Run("cpu mode always runs and registers nothing", func(t *testing.T) {
		reg := backend.NewRegistry()
		skip, err := Setup(bench.Instance{Mode: bench.CPU, Threads: 1}, reg, p)
		if err != nil || skip != "" || len(reg.Backends()) != 0 {
			t.Fatalf("skip %q, err %v, backends %d", skip, err, len(reg.Backends()))
		}
	})
	t.Run("AMX modes run only on real AMX, otherwise the row says the emulator is not timed", func(t *testing.T) {
		reg := backend.NewRegistry()
		skip, err := Setup(bench.Instance{Mode: bench.CPUAMX, Threads: 1, AMX: "all"}, reg, p)
		if err != nil {
			t.Fatal(err)
		}
		if amx.Detect().Usable {
			if skip != "" || len(reg.Backends()) != 1 {
				t.Fatalf("real AMX here, but skip %q and %d backends", skip, len(reg.Backends()))
			}
		} else if !strings.Contains(skip, "emulator is for correctness only") {
			t.Fatalf("skip %q", skip)
		}
	})
	t.Run("GPU modes say why they cannot run", func(t *testing.T) {
		skip, err := Setup(bench.Instance{Mode: bench.CPUGPU, Threads: 1, NGL: 1}, backend.NewRegistry(), p)
		if err != nil {
			t.Fatal(err)
		}
		want := "no GPU"
		if cuda.Probe().Available {
			want = "no CUDA backend yet"
		}
		if !strings.HasPrefix(skip, want) {
			t.Fatalf("skip %q, want it to start %q", skip, want)
		}
	})
}
