package placement

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

func total(t *testing.T, p *Plan, bt string) Total {
	t.Helper()
	for _, x := range p.Totals() {
		if x.BufferType == bt {
			return x
		}
	}
	t.Fatalf("no total for %s", bt)
	return Total{}
}

// The seed report's buffer tables are the attention weights of Qwen3-30B-A3B in Q4_0: 486 MiB with every layer on
// the host, 364.5 MiB with 12 layers on the GPU, and about 4.0 GB on CUDA0.
func TestSeedBufferFigures(t *testing.T) {
	ws := qwen3MoE30B(tensor.Q4_0, 48)
	reg := registry(false, nil)
	cases := []struct {
		name    string
		o       Options
		amxMiB  float64
		cudaGiB float64 // 0: no CUDA0 row; llama.cpp's "GB" here is GiB (4021.7 MiB)
	}{
		{"amx=attn on the CPU alone packs 486.0 MiB of attention", Options{AMX: AMXAttn}, 486.0, 0},
		{"amx=attn with 12 layers on the GPU packs 364.5 MiB", Options{AMX: AMXAttn, NGL: 12, GPU: true}, 364.5, 4.0},
		{"ngl alone implies the GPU in a plan", Options{AMX: AMXAttn, NGL: 12}, 364.5, 4.0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Place(ws, 48, c.o, reg)
			if err != nil {
				t.Fatal(err)
			}
			if got := total(t, p, AMX).MiB; math.Abs(got-c.amxMiB) > 0.05 {
				t.Errorf("AMX holds %.2f MiB, want %.1f", got, c.amxMiB)
			}
			cuda := total(t, p, CUDA0)
			if gib := float64(cuda.Bytes) / (1 << 30); c.cudaGiB == 0 && cuda.Count != 0 || c.cudaGiB != 0 && math.Abs(gib-c.cudaGiB) > 0.1 {
				t.Errorf("CUDA0 holds %.2f GiB in %d tensors, want about %.1f GiB", gib, cuda.Count, c.cudaGiB)
			}
			var sum int64
			for _, x := range p.Totals() {
				sum += x.Bytes
			}
			var want int64
			for _, w := range ws {
				want += w.Bytes()
			}
			if sum != want {
				t.Errorf("totals add up to %d bytes, the weights to %d", sum, want)
			}
		})
	}
}

func TestPreferenceOrder(t *testing.T) {
	ws := qwen3MoE30B(tensor.Q4_0, 4)
	cases := []struct {
		name   string
		o      Options
		tensor string
		want   string
		reason []string // fragments the reason must contain
	}{
		{"an offloaded layer goes to CUDA0 even when AMX would take it", Options{AMX: AMXAll, NGL: 1},
			"blk.3.attn_q.weight", CUDA0, []string{"CUDA0: layer 3 offloaded", "ngl=1"}},
		{"a host attention weight goes to AMX under amx=attn", Options{AMX: AMXAttn, NGL: 1},
			"blk.2.attn_q.weight", AMX, []string{"AMX: q4_0, ne1 4096 % 32 == 0 (attention projection, amx=attn)"}},
		{"a host expert goes to pinned memory when a GPU is present", Options{AMX: AMXAll, GPU: true},
			"blk.0.ffn_up_exps.weight", CUDAHost, []string{"CUDA_Host:", "MUL_MAT_ID expert, AMX experts off", "pinned"}},
		{"an expert stays on the CPU without a GPU and says AMX experts are off", Options{AMX: AMXAll},
			"blk.0.ffn_up_exps.weight", CPU, []string{"CPU: AMX refuses it: MUL_MAT_ID expert, AMX experts off"}},
		{"an F32 norm stays on the CPU under amx=all", Options{AMX: AMXAll},
			"blk.1.attn_norm.weight", CPU, []string{"F32 tensors are not packed for AMX"}},
		{"the router is not offered under amx=attn", Options{AMX: AMXAttn},
			"blk.1.ffn_gate_inp.weight", CPU, []string{"amx=attn offers only attention projections"}},
		{"nothing goes to AMX with amx=off", Options{AMX: AMXOff},
			"blk.1.attn_k.weight", CPU, []string{"CPU: amx=off"}},
		{"token_embd stays on the host however many layers are offloaded", Options{NGL: 99},
			"token_embd.weight", CUDAHost, []string{"input layer", "stays on the host"}},
		{"the output layer follows once ngl exceeds the layer count", Options{NGL: 5},
			"output.weight", CUDA0, []string{"output layer offloaded (ngl=5 > 4 layers)"}},
		{"the output layer stays on the host when ngl equals the layer count", Options{NGL: 4},
			"output_norm.weight", CUDAHost, []string{"output layer stays on the host"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Place(ws, 4, c.o, registry(false, nil))
			if err != nil {
				t.Fatal(err)
			}
			d, ok := p.Lookup(c.tensor)
			if !ok {
				t.Fatalf("no decision for %s", c.tensor)
			}
			if d.BufferType != c.want {
				t.Errorf("%s went to %s (%s), want %s", c.tensor, d.BufferType, d.Reason, c.want)
			}
			for _, frag := range c.reason {
				if !strings.Contains(d.Reason, frag) {
					t.Errorf("reason %q lacks %q", d.Reason, frag)
				}
			}
		})
	}
}

func TestAMXTakesExpertsOnceItsRuleSaysSo(t *testing.T) {
	p, err := Place(qwen3MoE30B(tensor.Q4_0, 2), 2, Options{AMX: AMXAll}, registry(true, nil))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := p.Lookup("blk.1.ffn_down_exps.weight")
	if d.BufferType != AMX {
		t.Errorf("expert went to %s (%s), want AMX", d.BufferType, d.Reason)
	}
}

func TestOffloaded(t *testing.T) {
	cases := []struct {
		name         string
		tensor       string
		layers, ngl  int
		want         bool
		reasonSubstr string
	}{
		{"the last layer is offloaded with ngl=1", "blk.47.ffn_norm.weight", 48, 1, true, "layer 47 offloaded (ngl=1 offloads layer 47)"},
		{"the first offloaded layer with ngl=12 is 36", "blk.36.attn_q.weight", 48, 12, true, "layers 36-47"},
		{"layer 35 stays with ngl=12", "blk.35.attn_q.weight", 48, 12, false, "layer 35 stays on the host"},
		{"every layer stays with ngl=0", "blk.47.attn_q.weight", 48, 0, false, "ngl=0"},
		{"ngl beyond the layer count offloads every layer", "blk.0.attn_q.weight", 48, 100, true, "layers 0-47"},
		{"the output layer needs ngl above the layer count", "output.weight", 48, 48, false, "needs ngl > 48"},
		{"the output layer goes with ngl=49", "output.weight", 48, 49, true, "ngl=49 > 48"},
		{"token_embd never goes", "token_embd.weight", 48, 49, false, "input layer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := Offloaded(Weight(c.tensor, tensor.Q4_0, [4]int{2048, 2048, 1, 1}), c.layers, c.ngl)
			if got != c.want || !strings.Contains(why, c.reasonSubstr) {
				t.Errorf("Offloaded = %v, %q; want %v and a reason containing %q", got, why, c.want, c.reasonSubstr)
			}
		})
	}
}

func TestOfferedToAMX(t *testing.T) {
	cases := []struct {
		name, tensor, mode string
		want               bool
	}{
		{"amx=attn offers attn_q", "blk.0.attn_q.weight", AMXAttn, true},
		{"amx=attn offers attn_k", "blk.3.attn_k.weight", AMXAttn, true},
		{"amx=attn offers attn_v", "blk.3.attn_v.weight", AMXAttn, true},
		{"amx=attn offers attn_output", "blk.3.attn_output.weight", AMXAttn, true},
		{"amx=attn does not offer attn_q_norm", "blk.3.attn_q_norm.weight", AMXAttn, false},
		{"amx=attn does not offer a bias", "blk.3.attn_q.bias", AMXAttn, false},
		{"amx=attn does not offer experts", "blk.3.ffn_up_exps.weight", AMXAttn, false},
		{"amx=attn does not offer the output matrix", "output.weight", AMXAttn, false},
		{"amx=all offers experts", "blk.3.ffn_up_exps.weight", AMXAll, true},
		{"amx=all offers norms (AMX refuses them itself)", "blk.3.attn_norm.weight", AMXAll, true},
		{"amx=off offers nothing", "blk.0.attn_q.weight", AMXOff, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := OfferedToAMX(Weight(c.tensor, tensor.Q4_0, [4]int{2048, 2048, 1, 1}), c.mode)
			if got != c.want || why == "" {
				t.Errorf("OfferedToAMX = %v, %q; want %v with a reason", got, why, c.want)
			}
		})
	}
}

func TestConsumingOpAndLayer(t *testing.T) {
	cases := []struct {
		name, tensor string
		op           graph.Kind
		layer        int
	}{
		{"stacked experts feed MUL_MAT_ID", "blk.7.ffn_gate_exps.weight", graph.MulMatID, 7},
		{"the token embedding feeds GET_ROWS", "token_embd.weight", graph.GetRows, -1},
		{"a layer norm feeds RMS_NORM", "blk.0.attn_norm.weight", graph.RMSNorm, 0},
		{"a per-head norm feeds RMS_NORM", "blk.12.attn_k_norm.weight", graph.RMSNorm, 12},
		{"the final norm feeds RMS_NORM outside the layers", "output_norm.weight", graph.RMSNorm, -1},
		{"the router feeds MUL_MAT", "blk.3.ffn_gate_inp.weight", graph.MulMat, 3},
		{"a projection feeds MUL_MAT", "blk.3.attn_output.weight", graph.MulMat, 3},
		{"the output matrix feeds MUL_MAT", "output.weight", graph.MulMat, -1},
		{"a bias feeds ADD", "blk.2.attn_q.bias", graph.Add, 2},
		{"a shared-expert gate feeds MUL_MAT", "blk.2.ffn_gate_shexp.weight", graph.MulMat, 2},
		{"a malformed layer number is outside the layers", "blk.x.attn_q.weight", graph.MulMat, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := Weight(c.tensor, tensor.Q4_0, [4]int{32, 1, 1, 1})
			if w.Op != c.op || w.Layer != c.layer {
				t.Errorf("%s: op %s layer %d, want %s layer %d", c.tensor, w.Op, w.Layer, c.op, c.layer)
			}
		})
	}
}

func TestPlaceRejectsWhatItCannotPlace(t *testing.T) {
	ws := qwen3MoE30B(tensor.Q4_0, 2)
	cpuOnly := backend.NewRegistry()
	cpuOnly.AddBufferType(&fakeBuffer{name: CPU, host: true})
	refusing := registry(false, nil)
	refusing.AddBufferType(&fakeBuffer{name: CUDA0, accept: func(w backend.WeightInfo) (bool, string) {
		return w.Type != tensor.Q4_0, "no q4_0 kernels"
	}})
	cases := []struct {
		name string
		ws   []backend.WeightInfo
		n    int
		o    Options
		reg  *backend.Registry
		want string
	}{
		{"ngl without a GPU says no GPU is available", ws, 2, Options{NGL: 1}, cpuOnly, "ngl=1 puts layers on the GPU, but no CUDA0 buffer type is registered"},
		{"amx without an AMX buffer type says so", ws, 2, Options{AMX: AMXAttn}, cpuOnly, "amx=attn offers weights to AMX, but no AMX buffer type"},
		{"gpu=on without CUDA_Host says so", ws, 2, Options{GPU: true}, cpuOnly, "gpu=on pins host weights, but no CUDA_Host"},
		{"an unknown amx mode is named", ws, 2, Options{AMX: "some"}, cpuOnly, `amx="some" is not a placement mode`},
		{"a negative ngl is named", ws, 2, Options{NGL: -1}, cpuOnly, "ngl=-1 is negative"},
		{"a weight beyond the layer count is named", ws, 1, Options{}, cpuOnly, "blk.1.attn_norm.weight is in layer 1, but the model has 1 layers"},
		{"an unknown tensor type is named", []backend.WeightInfo{Weight("blk.0.x.weight", tensor.DType(99), [4]int{32, 1, 1, 1})}, 1, Options{}, cpuOnly, "type(99)"},
		{"CUDA0 refusing an offloaded weight is an error", ws, 2, Options{NGL: 1}, refusing, "CUDA0 refuses it: no q4_0 kernels"},
		{"a nil registry is an error", ws, 2, Options{}, nil, "needs a registry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Place(c.ws, c.n, c.o, c.reg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Place error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestTotalsAndReports(t *testing.T) {
	// AMX repacking Q4_0 into int8 with a float32 scale per 32 (36 bytes per block instead of 18).
	packed := func(w backend.WeightInfo) int64 { return w.Bytes() * 2 }
	p, err := Place(qwen3MoE30B(tensor.Q4_0, 3), 3, Options{AMX: AMXAttn}, registry(false, packed))
	if err != nil {
		t.Fatal(err)
	}
	ts := p.Totals()
	var order []string
	for _, x := range ts {
		order = append(order, x.BufferType)
	}
	if got := strings.Join(order, ","); got != "CPU,AMX,CUDA0,CUDA_Host" {
		t.Errorf("totals in order %s, want registry order", got)
	}
	amx := total(t, p, AMX)
	if amx.Count != 12 || amx.PackedBytes != 2*amx.Bytes {
		t.Errorf("AMX total %+v: want 12 tensors and packed twice the GGUF bytes", amx)
	}
	if c := total(t, p, CUDA0); c.Count != 0 || c.Bytes != 0 {
		t.Errorf("CUDA0 received %+v without ngl", c)
	}

	var buf bytes.Buffer
	if err := p.WriteTotals(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "AMX ") || !strings.Contains(out, "(packed") || strings.Contains(out, "CUDA0") {
		t.Errorf("totals table should list AMX with its packed size and omit empty CUDA0:\n%s", out)
	}
	buf.Reset()
	if err := p.WriteTensors(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(p.Decisions)+1 {
		t.Fatalf("tensor table has %d lines for %d decisions", len(lines), len(p.Decisions))
	}
	for _, want := range []string{"blk.0.attn_q.weight", "q4_0", "[2048 4096]", "AMX", "MUL_MAT"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("tensor table lacks %q", want)
		}
	}
	rows := p.Rows()
	if r := rows[1]; r.Name != "blk.0.attn_norm.weight" || r.Shape != "[2048]" || r.Op != "RMS_NORM" || r.BufferType != CPU || r.Reason == "" {
		t.Errorf("row %+v is not the attn_norm row it should be", r)
	}
	if s := p.Summary(); !strings.HasPrefix(s, "amx=attn ngl=0: CPU ") {
		t.Errorf("summary %q", s)
	}
}

func TestDiff(t *testing.T) {
	ws := qwen3MoE30B(tensor.Q4_0, 4)
	reg := registry(true, nil)
	attn, _ := Place(ws, 4, Options{AMX: AMXAttn}, reg)
	all, _ := Place(ws, 4, Options{AMX: AMXAll}, reg)
	moves, err := Diff(attn, all)
	if err != nil {
		t.Fatal(err)
	}
	// amx=all with an expert kernel also takes the three expert stacks per layer and the output matrix; the
	// router (F32), norms and token_embd (GET_ROWS) stay.
	if len(moves) != 4*3+1 {
		t.Errorf("%d moves, want 13: %+v", len(moves), moves)
	}
	for _, m := range moves {
		if m.From != CPU || m.To != AMX || m.Bytes <= 0 || m.ToReason == "" {
			t.Errorf("move %+v", m)
		}
	}
	other, _ := Place(qwen3MoE30B(tensor.Q4_0, 3), 3, Options{}, reg)
	if _, err := Diff(attn, other); err == nil {
		t.Error("plans of different models compared without error")
	}
}
