package placement

import (
	"path/filepath"
	"testing"

	"tilelab/engine/gguf"
	"tilelab/engine/graph"
	testdataset "tilelab/internal/testdata"
)

// testdata finds ../shared/testdata beside the module root, or $TILELAB_TESTDATA.
func testdata(t *testing.T) string { return testdataset.Dir(t) }

func openTiny(t *testing.T) *gguf.File {
	t.Helper()
	f, err := gguf.Open(filepath.Join(testdata(t), "models", "tiny-qwen3moe-q4_0.gguf"))
	if err != nil {
		t.Fatalf("the tiny model is part of the shared test data: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWeightsFromARealFile(t *testing.T) {
	f := openTiny(t)
	ws, err := Weights(f)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Layers(f)
	if err != nil || n != 4 {
		t.Fatalf("Layers = %d, %v; the tiny model has 4", n, err)
	}
	if len(ws) != len(f.Tensors) {
		t.Fatalf("%d weights for %d tensors", len(ws), len(f.Tensors))
	}
	ops := map[graph.Kind]int{}
	for _, w := range ws {
		ops[w.Op]++
		if ti, _ := f.Tensor(w.Name); w.Bytes() != ti.Size {
			t.Errorf("%s: WeightInfo says %d bytes, the file %d", w.Name, w.Bytes(), ti.Size)
		}
	}
	// Per layer: 3 stacked experts; 4 norms (attn, ffn, q, k) plus output_norm; token_embd.
	if ops[graph.MulMatID] != 12 || ops[graph.RMSNorm] != 17 || ops[graph.GetRows] != 1 {
		t.Errorf("consuming ops %v: want 12 MUL_MAT_ID, 17 RMS_NORM, 1 GET_ROWS", ops)
	}
}

func TestPlanOfARealFile(t *testing.T) {
	p, err := FromGGUF(openTiny(t), Options{AMX: AMXAttn, NGL: 1}, registry(false, nil))
	if err != nil {
		t.Fatal(err)
	}
	// 3 host layers of attention: q and o 256x256, k and v 256x64, Q4_0 at 18 bytes per 32.
	if got := total(t, p, AMX); got.Count != 12 || got.Bytes != 3*(2*256*256+2*256*64)*18/32 {
		t.Errorf("AMX total %+v", got)
	}
	if d, _ := p.Lookup("blk.3.ffn_down_exps.weight"); d.BufferType != CUDA0 {
		t.Errorf("last layer's expert went to %s (%s)", d.BufferType, d.Reason)
	}
}

func TestLayersNeedsTheArchitecture(t *testing.T) {
	if _, err := Layers(&gguf.File{}); err == nil {
		t.Error("a file without general.architecture gave a layer count")
	}
	if _, err := Weights(nil); err == nil {
		t.Error("Weights(nil) gave weights")
	}
}
