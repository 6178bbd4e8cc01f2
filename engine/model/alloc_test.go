package model

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"tilelab/amx"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/placement"
	"tilelab/engine/pool"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
)

// A decode step (one token after a prompt) allocates nothing once the first step has sized the arena and the
// scratch: the graph is rebuilt in the arena, every parallel section is a job value the backend keeps, and the
// workers' scratch is reserved up front. It holds in CPU mode and in AMX mode (whose decode steps run CPU mode's
// kernels on the plain bytes, below the tile threshold, through the AMX backend and its own CPU backend), with the
// fast and the reference kernels, fused and not.
func TestDecodeStepAllocatesNothing(t *testing.T) {
	t.Setenv("TILELAB_AMX_CALIBRATION", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("TILELAB_AMX_THRESHOLD", "")
	f := openTiny(t)
	defer func(v bool) { fuseOps = v }(fuseOps)
	for _, mode := range []string{placement.AMXOff, placement.AMXAll} {
		for _, reference := range []bool{false, true} {
			for _, fuse := range []bool{true, false} {
				kernels, fused := map[bool]string{false: "fast", true: "reference"}[reference], map[bool]string{true: "with", false: "without"}[fuse]
				kv := tensor.F32
				if fuse && mode == placement.AMXOff {
					kv = tensor.F16 // an F16 cache: converting on store and reading it allocate nothing either
				}
				name := fmt.Sprintf("in %s mode on the %s kernels %s fused ops, %s cache", modeName(mode), kernels, fused, kv)
				t.Run(name, func(t *testing.T) {
					fuseOps = fuse
					p := pool.New(2)
					defer p.Close()
					reg := backend.NewRegistry()
					reg.AddBufferType(cpu.BufferType())
					if mode != placement.AMXOff {
						if _, err := amx.Register(reg, p); err != nil {
							t.Fatal(err)
						}
					}
					reg.AddBackend(cpu.New(p, cpu.Options{Reference: reference}))
					m, err := Load(f, Options{Placement: placement.Options{AMX: mode}, Registry: reg, Ctx: 64, KV: kv})
					if err != nil {
						t.Fatal(err)
					}
					defer m.Close()
					ctx := context.Background()
					if _, err := m.Eval(ctx, []int32{1, 2, 3}); err != nil {
						t.Fatal(err)
					}
					tok := []int32{42}
					step := func() {
						if _, err := m.Eval(ctx, tok); err != nil {
							t.Fatal(err)
						}
					}
					// A collection now, so the runtime's first one (which starts its background mark workers, a
					// goroutine per P, each an allocation) cannot fall inside the steps counted below.
					runtime.GC()
					// 20 steps (and AllocsPerRun's warm-up step) stay well inside the context of 64.
					if a := testing.AllocsPerRun(20, step); a != 0 {
						t.Errorf("%v allocations per decode step", a)
					}
					// AllocsPerRun rounds down: count every allocation of some more steps too. The count is the whole
					// process's, and a pool worker that parks on its channel can make the Go runtime allocate a wait
					// record (a sudog, 112 bytes) when more goroutines wait at once than ever before, which a loaded
					// machine (go test ./... runs packages side by side) sometimes causes: allow one per worker, no
					// more; anything of ours would allocate on every step.
					// Something of the runtime's own (a finalizer run, a collection's helpers) can also land in one
					// such window now and then; an allocation of ours lands in every one: fail only if three windows
					// in a row all go over.
					var n, bytes uint64
					for try := 0; try < 3; try++ {
						var before, after runtime.MemStats
						runtime.ReadMemStats(&before)
						for i := 0; i < 10; i++ {
							step()
						}
						runtime.ReadMemStats(&after)
						if n, bytes = after.Mallocs-before.Mallocs, after.TotalAlloc-before.TotalAlloc; n <= uint64(p.Threads()) {
							break
						}
					}
					if n > uint64(p.Threads()) {
						t.Errorf("%d allocations (%d bytes) in 10 decode steps, three times running", n, bytes)
					}
					onAMX := 0
					for _, op := range m.b.Graph.Ops {
						if len(op.Src) > 0 && op.Src[0] != nil && op.Src[0].Buffer() == amx.Name {
							onAMX++
						}
					}
					if (mode != placement.AMXOff) != (onAMX > 0) {
						t.Errorf("%d ops of the decode step read AMX weights in %s mode", onAMX, modeName(mode))
					}
				})
			}
		}
	}
}

func modeName(amxMode string) string {
	if amxMode == placement.AMXOff {
		return "CPU"
	}
	return "AMX"
}

func TestLoadReportsTheWeightsABufferTypeConverts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny-moe.gguf")
	if err := synth.WriteFile(path, "tiny-moe", synth.Options{Quant: tensor.Q4_0, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, mode := range []string{placement.AMXOff, placement.AMXAll} {
		p := pool.New(2)
		reg := backend.NewRegistry()
		if mode != placement.AMXOff {
			if _, err := amx.Register(reg, p); err != nil {
				t.Fatal(err)
			}
		}
		var calls []int64
		var total int64
		m, err := Load(f, Options{Placement: placement.Options{AMX: mode}, Registry: reg, Threads: 2, Ctx: 16,
			Progress: func(done, tot int64) { calls, total = append(calls, done), tot }})
		if err != nil {
			t.Fatal(err)
		}
		var converted int64
		for i, d := range m.Plan.Decisions {
			if d.BufferType != "CPU" {
				converted += f.Tensors[i].Size
			}
		}
		m.Close()
		p.Close()
		if mode == placement.AMXOff {
			if len(calls) != 0 {
				t.Fatalf("amx=off converts nothing, yet progress was called %d times", len(calls))
			}
			continue
		}
		if converted == 0 || len(calls) == 0 || total != converted || calls[len(calls)-1] != total {
			t.Fatalf("amx=all: %d calls ending at %v of %d; the plan converts %d bytes", len(calls), calls[len(calls)-1:], total, converted)
		}
		for i := 1; i < len(calls); i++ {
			if calls[i] <= calls[i-1] {
				t.Fatalf("progress went from %d to %d", calls[i-1], calls[i])
			}
		}
	}
}
