package backend_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"tilelab/amx"
	"tilelab/engine/backend"
	"tilelab/engine/gguf"
	"tilelab/engine/graph"
	"tilelab/engine/model"
	"tilelab/engine/placement"
	testdataset "tilelab/internal/testdata"
)

// expertsOnlyAMX is the real AMX buffer type (its repacking, its layout) narrowed to take MoE experts only: the
// seed's fault, experts forced into the VNNI layout, without touching anything else.
type expertsOnlyAMX struct{ *amx.BufferType }

func (b expertsOnlyAMX) Accepts(w backend.WeightInfo) (bool, string) {
	if w.Op != graph.MulMatID {
		return false, "fault injection: experts only"
	}
	return b.BufferType.Accepts(w)
}

func tinyPath(t *testing.T) string {
	return testdataset.Path(t, "models", "tiny-qwen3moe-q4_0.gguf")
}

// Seed bug 2, end to end on the real model: experts packed by the real AMX buffer type while no backend has an
// AMX MUL_MAT_ID kernel (no AMX backend is registered). The load or the first forward pass must fail with an error
// naming the expert tensor, MUL_MAT_ID and the layout — never return logits computed from misread bytes.
func TestExpertsForcedIntoAMXWithoutAKernelFailClearly(t *testing.T) {
	f, err := gguf.Open(tinyPath(t))
	if err != nil {
		t.Fatalf("the tiny model is part of the shared test data: %v", err)
	}
	defer f.Close()
	reg := backend.NewRegistry()
	reg.AddBufferType(expertsOnlyAMX{amx.NewBufferType()})
	m, err := model.Load(f, model.Options{Placement: placement.Options{AMX: placement.AMXAll}, Registry: reg, Threads: 2, Ctx: 16})
	if err == nil {
		defer m.Close()
		if d, _ := m.Plan.Lookup("blk.0.ffn_up_exps.weight"); d.BufferType != placement.AMX {
			t.Fatalf("the fault was not injected: the expert went to %s (%s)", d.BufferType, d.Reason)
		}
		var logits []float32
		logits, err = m.Eval(context.Background(), []int32{12522, 5193})
		for i, v := range logits {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("logit %d is %v", i, v)
			}
		}
		if err == nil {
			t.Fatal("a forward pass over experts in the AMX layout with no AMX MUL_MAT_ID kernel succeeded")
		}
	}
	for _, want := range []string{"MUL_MAT_ID", "ffn_", "_exps", string(amx.LayoutInt8)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	t.Logf("error: %v", err)
}
