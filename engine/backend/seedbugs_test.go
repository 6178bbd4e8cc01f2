package backend_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/profile"
	"tilelab/engine/tensor"
)

// amxLayout stands in for the amx package's packed layout; the tests need only a layout the CPU cannot read.
const amxLayout tensor.Layout = "amx-int8"

// layoutBackend is a backend that computes MUL_MAT (and, when mmid is set, MUL_MAT_ID) on weights in exactly one
// layout, the way the contract says every backend must: capability from the layout the weight is in, resolved
// through views. Compute fills Dst with a marker so tests can see which backend ran.
type layoutBackend struct {
	name   string
	layout tensor.Layout
	buffer string // the buffer type it reads weights from; "" for any host buffer
	mmid   bool
	mark   float32
}

func (b *layoutBackend) Name() string { return b.name }

func (b *layoutBackend) SupportsOp(op *graph.Op) (bool, string) {
	switch op.Kind {
	case graph.MulMat:
	case graph.MulMatID:
		if !b.mmid {
			return false, "no MUL_MAT_ID kernel"
		}
	default:
		return false, op.Kind.String() + " is not implemented"
	}
	w := op.Src[0].Source()
	l := w.Layout
	if l == "" {
		l = tensor.Plain
	}
	if l != b.layout {
		return false, fmt.Sprintf("weight %s is in layout %s, which %s kernels do not read", op.Src[0].Name, l, b.name)
	}
	if b.buffer != "" && op.Src[0].Buffer() != b.buffer {
		return false, fmt.Sprintf("weight %s lives in %s, not %s", op.Src[0].Name, op.Src[0].Buffer(), b.buffer)
	}
	return true, fmt.Sprintf("%s weight in layout %s", op.Src[0].Buffer(), l)
}

func (b *layoutBackend) Compute(op *graph.Op) (string, error) {
	if ok, why := b.SupportsOp(op); !ok {
		return "", fmt.Errorf("tensor %s, op %s: %s", op.Src[0].Name, op.Kind, why)
	}
	for i := range op.Dst.F32 {
		op.Dst.F32[i] = b.mark
	}
	return b.name + "-kernel", nil
}

func amxWeight(name string, ne [4]int) *graph.Tensor {
	return &graph.Tensor{Name: name, Type: tensor.Q4_0, Ne: ne, Layout: amxLayout, BufferType: "AMX"}
}

func f32(name string, ne ...int) *graph.Tensor {
	t := &graph.Tensor{Name: name, Type: tensor.F32, Ne: [4]int{1, 1, 1, 1}}
	copy(t.Ne[:], ne)
	t.F32 = make([]float32, t.Elems())
	for i := range t.F32 {
		t.F32[i] = float32(i%7) - 3.5
	}
	return t
}

func registry(amxMMID bool) *backend.Registry {
	reg := backend.NewRegistry()
	reg.AddBackend(&layoutBackend{name: "AMX", layout: amxLayout, buffer: "AMX", mmid: amxMMID, mark: 1})
	reg.AddBackend(&layoutBackend{name: "CPU", layout: tensor.Plain, mmid: true, mark: 2})
	return reg
}

// Seed bug 3: a view's buffer is its source's. An op on a view of an AMX weight must be scheduled as if it were
// on the weight itself, and the profile must record the source's buffer.
func TestAnOpOnAViewFindsItsSourceBuffer(t *testing.T) {
	w := amxWeight("blk.0.attn_q.weight", [4]int{64, 32, 1, 1})
	cases := []struct {
		name string
		src  *graph.Tensor
	}{
		{"a direct view", &graph.Tensor{Name: "view", Type: w.Type, Ne: w.Ne, ViewSrc: w}},
		{"a view of a view", &graph.Tensor{Name: "view2", Type: w.Type, Ne: w.Ne, ViewSrc: &graph.Tensor{Name: "view1", ViewSrc: w}}},
		{"a view whose own fields claim plain CPU memory", &graph.Tensor{Name: "stale", Type: w.Type, Ne: w.Ne, ViewSrc: w, BufferType: "CPU", Layout: tensor.Plain}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, y := f32("x", 64, 3), f32("y", 32, 3)
			g := &graph.Graph{}
			g.Add(&graph.Op{Kind: graph.MulMat, Name: "blk.0.attn_q", Dst: y, Src: []*graph.Tensor{c.src, x}})
			rec := &profile.Recorder{}
			s := &backend.Scheduler{Registry: registry(false), Profile: rec, Trace: true}
			if err := s.Run(context.Background(), g); err != nil {
				t.Fatal(err)
			}
			if got := s.Assignments[0].Backend; got != "AMX" {
				t.Errorf("MUL_MAT on %s ran on %s (%s), want AMX", c.src.Name, got, s.Assignments[0].Reason)
			}
			if y.F32[0] != 1 {
				t.Errorf("the AMX backend did not compute the op: y[0] = %v", y.F32[0])
			}
			if got := rec.Records[0].Buffers; got != "AMX,CPU" {
				t.Errorf("profile records buffers %q, want the source's AMX then CPU", got)
			}
		})
	}
}

// Seed bug 2: experts forced into the AMX layout while no AMX MUL_MAT_ID kernel exists. The CPU must not read the
// packed bytes as plain Q4_0; the failure must be an error naming tensor, op and layout, at load (CheckWeight) and
// at first use (the scheduler), and the output must stay untouched — never NaN or garbage.
func TestAnExpertInTheAMXLayoutWithoutAKernelFailsClearly(t *testing.T) {
	w := amxWeight("blk.0.ffn_up_exps.weight", [4]int{64, 32, 4, 1})
	reg := registry(false)

	t.Run("at load the check names tensor, op, layout and each refusal", func(t *testing.T) {
		err := backend.CheckWeight(reg, w, graph.MulMatID)
		if err == nil {
			t.Fatal("CheckWeight accepted an expert no backend can compute")
		}
		for _, want := range []string{"blk.0.ffn_up_exps.weight", "MUL_MAT_ID", "amx-int8", "AMX: no MUL_MAT_ID kernel", "CPU: weight blk.0.ffn_up_exps.weight is in layout amx-int8"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("at first use the scheduler refuses and leaves the output alone", func(t *testing.T) {
		x, ids, y := f32("x", 64, 1, 2), &graph.Tensor{Name: "ids", Type: tensor.I32, Ne: [4]int{2, 2, 1, 1}, I32: []int32{0, 3, 1, 2}}, f32("y", 32, 2, 2)
		for i := range y.F32 {
			y.F32[i] = 42
		}
		g := &graph.Graph{}
		g.Add(&graph.Op{Kind: graph.MulMatID, Name: "blk.0.ffn_up_exps", Dst: y, Src: []*graph.Tensor{w, x, ids}})
		err := (&backend.Scheduler{Registry: reg}).Run(context.Background(), g)
		if err == nil || !strings.Contains(err.Error(), "no backend can compute MUL_MAT_ID blk.0.ffn_up_exps") || !strings.Contains(err.Error(), "amx-int8") {
			t.Errorf("scheduler error = %v", err)
		}
		for i, v := range y.F32 {
			if v != 42 || math.IsNaN(float64(v)) {
				t.Fatalf("y[%d] = %v: the output was written despite the refusal", i, v)
			}
		}
	})
	t.Run("once AMX has a MUL_MAT_ID kernel the same expert is accepted", func(t *testing.T) {
		if err := backend.CheckWeight(registry(true), w, graph.MulMatID); err != nil {
			t.Error(err)
		}
	})
	t.Run("a plain expert passes the check on the CPU", func(t *testing.T) {
		plain := &graph.Tensor{Name: "blk.0.ffn_up_exps.weight", Type: tensor.Q4_0, Ne: w.Ne, Layout: tensor.Plain}
		if err := backend.CheckWeight(reg, plain, graph.MulMatID); err != nil {
			t.Error(err)
		}
	})
}

func TestProbeOpShapes(t *testing.T) {
	w := &graph.Tensor{Name: "w", Type: tensor.Q8_0, Ne: [4]int{64, 96, 8, 1}}
	cases := []struct {
		name string
		op   graph.Kind
		src  int // index of the weight in Src
		dst  [4]int
	}{
		{"MUL_MAT takes the weight first and yields its rows", graph.MulMat, 0, [4]int{96, 1, 1, 1}},
		{"MUL_MAT_ID takes ids third", graph.MulMatID, 0, [4]int{96, 1, 1, 1}},
		{"GET_ROWS yields one row of K", graph.GetRows, 0, [4]int{64, 1, 1, 1}},
		{"RMS_NORM takes the weight second", graph.RMSNorm, 1, [4]int{64, 1, 1, 1}},
		{"ADD takes the bias second", graph.Add, 1, [4]int{64, 1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := backend.ProbeOp(w, c.op)
			if err != nil {
				t.Fatal(err)
			}
			if p.Src[c.src] != w || p.Dst.Ne != c.dst || p.Kind != c.op {
				t.Errorf("probe %s: weight at %d? dst %v", c.op, c.src, p.Dst.Ne)
			}
		})
	}
	if _, err := backend.ProbeOp(w, graph.SoftMax); err == nil || !strings.Contains(err.Error(), "no probe for op SOFT_MAX") {
		t.Errorf("SOFT_MAX probe error = %v", err)
	}
}
