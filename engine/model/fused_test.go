package model

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"tilelab/amx"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/graph"
	"tilelab/engine/placement"
	"tilelab/engine/pool"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
)

// The fused forward pass (MUL_MATS, MUL_MAT_ADD, MUL_MAT_ID_SWIGLU, MUL_MAT_ID_SUM) must give the unfused pass's
// logits, for a prompt and for the decode steps after it, in both kernel modes; and it must need fewer parallel
// sections (barriers) per decode step, which is what it is for.
func TestFusedForwardGivesTheUnfusedLogitsWithFewerBarriers(t *testing.T) {
	f := openTiny(t)
	defer func(v bool) { fuseOps = v }(fuseOps)
	type result struct {
		logits   [][]float32
		sections uint64 // parallel sections of the last decode step
		kinds    map[graph.Kind]int
	}
	runModel := func(t *testing.T, reference, fuse bool) result {
		fuseOps = fuse
		m, err := Load(f, Options{Reference: reference, Threads: 3, Ctx: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ctx := context.Background()
		var r result
		out, err := m.Eval(ctx, []int32{1, 5, 9, 13, 200, 7})
		if err != nil {
			t.Fatal(err)
		}
		r.logits = append(r.logits, append([]float32(nil), out...))
		for _, tok := range []int32{42, 3, 77} {
			before := m.ownPool.Sections()
			if out, err = m.Eval(ctx, []int32{tok}); err != nil {
				t.Fatal(err)
			}
			r.sections = m.ownPool.Sections() - before
			r.logits = append(r.logits, append([]float32(nil), out...))
		}
		r.kinds = map[graph.Kind]int{}
		for _, op := range m.b.Graph.Ops {
			r.kinds[op.Kind]++
		}
		return r
	}
	for _, reference := range []bool{false, true} {
		name := map[bool]string{false: "fast kernels", true: "reference kernels"}[reference]
		t.Run("with "+name+" the fused pass gives the same logits", func(t *testing.T) {
			plain, fused := runModel(t, reference, false), runModel(t, reference, true)
			for _, k := range []graph.Kind{graph.MulMats, graph.MulMatAdd, graph.MulMatIDSwiGLU, graph.MulMatIDSum} {
				if fused.kinds[k] == 0 || plain.kinds[k] != 0 {
					t.Errorf("%s: %d ops in the fused graph, %d in the plain one; want some and none", k, fused.kinds[k], plain.kinds[k])
				}
			}
			for step := range plain.logits {
				p, q := plain.logits[step], fused.logits[step]
				scale := 0.0
				for _, v := range p {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for i := range p {
					if d := math.Abs(float64(p[i] - q[i])); d > 1e-5*scale || math.IsNaN(float64(q[i])) {
						t.Fatalf("step %d logit %d: fused %g, plain %g", step, i, q[i], p[i])
					}
				}
			}
			t.Logf("parallel sections per decode step: %d unfused, %d fused; ops %d and %d", plain.sections, fused.sections,
				total(plain.kinds), total(fused.kinds))
			if !reference && fused.sections >= plain.sections {
				t.Errorf("fused decode step runs %d parallel sections, unfused %d; want fewer", fused.sections, plain.sections)
			}
		})
	}
}

func total(m map[graph.Kind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// In AMX mode the fused ops are emitted for weights that all sit in AMX layouts (the AMX backend computes them;
// below its threshold with CPU mode's kernels on the plain bytes, so the logits are CPU mode's, bit for bit).
func TestFusedOpsRunInAMXModeWithCPUModesLogits(t *testing.T) {
	t.Setenv("TILELAB_AMX_CALIBRATION", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("TILELAB_AMX_THRESHOLD", "")
	path := filepath.Join(t.TempDir(), "tiny-moe.gguf")
	if err := synth.WriteFile(path, "tiny-moe", synth.Options{Quant: tensor.Q4_0, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := pool.New(3)
	defer p.Close()
	load := func(amxMode string) *Model {
		reg := backend.NewRegistry()
		reg.AddBufferType(cpu.BufferType())
		if amxMode != placement.AMXOff {
			if _, err := amx.Register(reg, p); err != nil {
				t.Fatal(err)
			}
		}
		reg.AddBackend(cpu.New(p, cpu.Options{}))
		m, err := Load(f, Options{Placement: placement.Options{AMX: amxMode}, Registry: reg, Ctx: 64})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	cm, am := load(placement.AMXOff), load(placement.AMXAll)
	ctx := context.Background()
	for step, toks := range [][]int32{{1, 7, 42, 3}, {17}, {250}} {
		want, err := cm.Eval(ctx, toks)
		if err != nil {
			t.Fatal(err)
		}
		want = append([]float32(nil), want...)
		got, err := am.Eval(ctx, toks)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("step %d logit %d: AMX mode %v, CPU mode %v", step, i, got[i], want[i])
			}
		}
	}
	fused := 0
	for _, op := range am.b.Graph.Ops {
		if op.Kind >= graph.MulMats {
			fused++
			if op.Src[0].Buffer() != amx.Name {
				t.Errorf("fused op %s reads %s from buffer %s, want AMX", op.Name, op.Src[0].Name, op.Src[0].Buffer())
			}
		}
	}
	if fused == 0 {
		t.Error("AMX mode's decode step has no fused op")
	}
}
