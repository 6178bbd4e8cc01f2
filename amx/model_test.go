package amx

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/graph"
	"tilelab/engine/model"
	"tilelab/engine/placement"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
)

// loadMode loads f in CPU mode (amx off) or AMX mode (amx=all), both on testPool.
func loadMode(t *testing.T, f *gguf.File, amxMode string) *model.Model {
	t.Helper()
	reg := backend.NewRegistry()
	reg.AddBufferType(cpu.BufferType())
	if amxMode != placement.AMXOff {
		if _, err := Register(reg, testPool); err != nil {
			t.Fatal(err)
		}
	}
	reg.AddBackend(cpu.New(testPool, cpu.Options{}))
	m, err := model.Load(f, model.Options{Placement: placement.Options{AMX: amxMode}, Registry: reg, Ctx: 128})
	if err != nil {
		t.Fatal(err)
	}
	m.Sched.Trace = true
	t.Cleanup(m.Close)
	return m
}

func TestAMXModeGivesCPUModesLogitsBelowTheThreshold(t *testing.T) {
	t.Setenv("TILELAB_AMX_CALIBRATION", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("TILELAB_AMX_THRESHOLD", "")
	for _, q := range []tensor.DType{tensor.Q4_0, tensor.BF16} {
		t.Run("a "+q.String()+" MoE model decodes bit for bit as in CPU mode, and a long prompt runs the tiles close to it", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tiny-moe.gguf")
			if err := synth.WriteFile(path, "tiny-moe", synth.Options{Quant: q, Seed: 3}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cm, am := loadMode(t, f, placement.AMXOff), loadMode(t, f, placement.AMXAll)
			if got := am.Plan; got == nil || !strings.Contains(planBuffers(got), Name) {
				t.Fatal("no weight was placed in AMX")
			}
			ctx := context.Background()
			// A 5-token prompt, then decode steps: every MUL_MAT and MUL_MAT_ID is below the default threshold (16).
			steps := [][]int32{{1, 7, 42, 3, 99}, {17}, {250}, {5}}
			for i, toks := range steps {
				want, err := cm.Eval(ctx, toks)
				if err != nil {
					t.Fatal(err)
				}
				want = append([]float32(nil), want...)
				got, err := am.Eval(ctx, toks)
				if err != nil {
					t.Fatal(err)
				}
				for j := range want {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("step %d: logit %d is %v in AMX mode, %v in CPU mode", i, j, got[j], want[j])
					}
				}
				if n := countKernels(am, "plain "+q.String()); n == 0 {
					t.Fatalf("step %d: no op ran CPU mode's kernel through the AMX backend (%v)", i, kernels(am))
				}
			}
			// A prompt of 40 tokens: the dense projections (40 rows) run the emulated tiles.
			long := make([]int32, 40)
			for i := range long {
				long[i] = int32(i*37%500 + 1)
			}
			cm.Reset()
			am.Reset()
			want, err := cm.Eval(ctx, long)
			if err != nil {
				t.Fatal(err)
			}
			want = append([]float32(nil), want...)
			got, err := am.Eval(ctx, long)
			if err != nil {
				t.Fatal(err)
			}
			if countKernels(am, "amx-") == 0 {
				t.Fatalf("a 40-token prompt ran no tile kernel (%v)", kernels(am))
			}
			ref := make([]float64, len(want))
			for i, v := range want {
				ref[i] = float64(v)
			}
			if e := relErr(got, ref); e > 0.05 || math.IsNaN(e) {
				t.Fatalf("40-token prompt: logits differ from CPU mode's by %.3g (relative)", e)
			}
		})
	}
}

func planBuffers(p *placement.Plan) string {
	var s []string
	for _, d := range p.Decisions {
		s = append(s, d.BufferType)
	}
	return strings.Join(s, " ")
}

func countKernels(m *model.Model, sub string) int {
	n := 0
	for _, a := range m.Sched.Assignments {
		if a.Backend == Name && strings.Contains(a.Kernel, sub) {
			n++
		}
	}
	return n
}

func kernels(m *model.Model) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range m.Sched.Assignments {
		if a.Op.Kind == graph.MulMat || a.Op.Kind == graph.MulMatID {
			k := a.Backend + ": " + a.Kernel
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}
