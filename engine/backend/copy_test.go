package backend_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"tilelab/amx"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/profile"
	"tilelab/engine/tensor"
)

// devMem stands in for device memory: floats the CPU backend cannot see, because the tensor's F32 is nil.
type devMem struct{ f32 []float32 }

// devBuffer is a fake device buffer type, "DEV0": not host memory, with an allocator and a copier to and from
// host memory, the way the CUDA buffer type will be.
type devBuffer struct {
	name          string
	allocs, frees int
	copies        []string // "h2d x", "d2h y"
	quiet         bool     // count copies in n instead of listing them (the allocation test)
	n             int
}

func (d *devBuffer) Name() string                              { return d.name }
func (d *devBuffer) IsHost() bool                              { return false }
func (d *devBuffer) Accepts(backend.WeightInfo) (bool, string) { return true, "fake device" }
func (d *devBuffer) PackedBytes(w backend.WeightInfo) int64    { return w.Bytes() }
func (d *devBuffer) Import(t *graph.Tensor) error              { return upload(t, d.name) }
func (d *devBuffer) CanCopy(from, to string) bool              { return (from == d.name) != (to == d.name) }
func (d *devBuffer) Free(t *graph.Tensor)                      { d.frees++; t.Extra = nil }
func (d *devBuffer) Alloc(t *graph.Tensor) error {
	if t.Type != tensor.F32 || t.ViewSrc != nil {
		return fmt.Errorf("fake device holds f32 tensors only, not %s", t.Type)
	}
	d.allocs++
	t.Extra = &devMem{make([]float32, t.Elems())}
	return nil
}

func (d *devBuffer) Copy(dst, src *graph.Tensor) (string, error) {
	switch {
	case dst.BufferType == d.name:
		copy(dst.Extra.(*devMem).f32, src.F32)
		d.note("h2d", src)
		return "h2d", nil
	case src.BufferType == d.name:
		copy(dst.F32, src.Extra.(*devMem).f32)
		d.note("d2h", src)
		return "d2h", nil
	}
	return "", fmt.Errorf("fake device copies to and from %s only", d.name)
}

func (d *devBuffer) note(dir string, src *graph.Tensor) {
	if d.quiet {
		d.n++
		return
	}
	d.copies = append(d.copies, dir+" "+src.Name)
}

// upload moves an F32 tensor's elements into fake device memory.
func upload(t *graph.Tensor, buf string) error {
	t.Extra, t.F32, t.BufferType = &devMem{t.F32}, nil, buf
	return nil
}

// devData is the device memory a tensor (or a view, through its Window) reads.
func devData(t *graph.Tensor) ([]float32, error) {
	src := t.Source()
	mem, ok := src.Extra.(*devMem)
	if !ok {
		return nil, fmt.Errorf("tensor %s has no device memory", t.Name)
	}
	if t == src {
		return mem.f32, nil
	}
	w, ok := t.Extra.(backend.Window)
	if !ok {
		return nil, fmt.Errorf("view %s has no window", t.Name)
	}
	return mem.f32[w.Offset : w.Offset+w.Len], nil
}

// devBackend is a fake device backend: it reads only its buffer type and computes MUL_MAT and ADD there.
type devBackend struct{ name, buf string }

func (b *devBackend) Name() string         { return b.name }
func (b *devBackend) Reads(bt string) bool { return bt == b.buf }

// SupportsOp allocates nothing when it accepts, or refuses an op kind, so the allocation test measures the
// scheduler alone.
func (b *devBackend) SupportsOp(op *graph.Op) (bool, string) {
	if op.Kind != graph.MulMat && op.Kind != graph.Add {
		return false, "it has no kernel for this op"
	}
	for i := 0; i <= len(op.Src); i++ {
		t := op.Dst
		if i < len(op.Src) {
			t = op.Src[i]
		}
		if t.Buffer() != b.buf {
			return false, fmt.Sprintf("tensor %s is in %s; %s kernels read %s only", t.Name, t.Buffer(), b.name, b.buf)
		}
	}
	return true, "it computes MUL_MAT and ADD on tensors in device memory"
}

func (b *devBackend) Compute(op *graph.Op) (string, error) {
	if ok, why := b.SupportsOp(op); !ok {
		return "", fmt.Errorf("%s refuses %s: %s", b.name, op.Name, why)
	}
	a, err := devData(op.Src[0])
	if err != nil {
		return "", err
	}
	x, err := devData(op.Src[1])
	if err != nil {
		return "", err
	}
	y, err := devData(op.Dst)
	if err != nil {
		return "", err
	}
	if op.Kind == graph.Add {
		for i := range y {
			y[i] = a[i] + x[i]
		}
		return "dev-add", nil
	}
	k, n, m := op.Src[0].Ne[0], op.Src[0].Ne[1], op.Src[1].Rows()
	for i := range m {
		for j := range n {
			var s float32
			for l := range k {
				s += a[j*k+l] * x[i*k+l]
			}
			y[i*n+j] = s
		}
	}
	return "dev-matmul", nil
}

// hostScale is a fake host backend for the allocation test: SCALE on tensors in CPU memory.
type hostScale struct{}

func (hostScale) Name() string         { return "HOST" }
func (hostScale) Reads(bt string) bool { return bt == "CPU" }
func (hostScale) SupportsOp(op *graph.Op) (bool, string) {
	if op.Kind != graph.Scale {
		return false, "HOST computes SCALE only"
	}
	return true, "HOST scales tensors in CPU memory"
}
func (hostScale) Compute(op *graph.Op) (string, error) {
	for i, v := range op.Src[0].F32[:op.Dst.Elems()] {
		op.Dst.F32[i] = v * op.Params.Scale
	}
	return "host-scale", nil
}

func randF32(rng *rand.Rand, name string, ne ...int) *graph.Tensor {
	t := &graph.Tensor{Name: name, Type: tensor.F32, Ne: [4]int{1, 1, 1, 1}, Layout: tensor.Plain}
	copy(t.Ne[:], ne)
	t.F32 = make([]float32, t.Elems())
	for i := range t.F32 {
		t.F32[i] = float32(rng.NormFloat64())
	}
	return t
}

// devWeight is a random F32 weight uploaded to the fake device, and its host values for references.
func devWeight(rng *rand.Rand, name string, k, n int) (*graph.Tensor, []float32) {
	w := randF32(rng, name, k, n)
	host := append([]float32(nil), w.F32...)
	upload(w, "DEV0")
	return w, host
}

func matmul(w, x []float32, k, n, m int) []float64 {
	out := make([]float64, n*m)
	for i := range m {
		for j := range n {
			var s float64
			for l := range k {
				s += float64(w[j*k+l]) * float64(x[i*k+l])
			}
			out[i*n+j] = s
		}
	}
	return out
}

func closeTo(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) < len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i, w := range want {
		if d := math.Abs(float64(got[i]) - w); d > 1e-4*(1+math.Abs(w)) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], w)
		}
	}
}

// devSetup is a registry with the fake device ahead of the real CPU backend, as a GPU is registered ahead of the
// CPU.
func devSetup(t *testing.T) (*backend.Registry, *devBuffer) {
	p := pool.New(2)
	t.Cleanup(p.Close)
	reg := backend.NewRegistry()
	reg.AddBufferType(cpu.BufferType())
	dev := &devBuffer{name: "DEV0"}
	reg.AddBufferType(dev)
	reg.AddBackend(&devBackend{name: "DEV", buf: "DEV0"})
	reg.AddBackend(cpu.New(p, cpu.Options{Reference: true}))
	return reg, dev
}

func copiesOf(s *backend.Scheduler) []backend.Assignment {
	var out []backend.Assignment
	for _, a := range s.Assignments {
		if a.Op.Kind == graph.Copy {
			out = append(out, a)
		}
	}
	return out
}

// An op whose weight lives in device memory runs on the device backend with its activation copied in; a CPU op
// that consumes its output gets it copied back; the values are W·x, scaled.
func TestAWeightOnTheDeviceMovesTheActivationAndBack(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const k, n, m = 40, 24, 3
	reg, dev := devSetup(t)
	w, wHost := devWeight(rng, "blk.0.ffn_up.weight", k, n)
	x := randF32(rng, "x", k, m)
	y := randF32(rng, "y", n, m)
	z := randF32(rng, "z", n, m)
	g := &graph.Graph{}
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "blk.0.ffn_up", Dst: y, Src: []*graph.Tensor{w, x}})
	g.Add(&graph.Op{Kind: graph.Scale, Name: "scale", Dst: z, Src: []*graph.Tensor{y}, Params: graph.Params{Scale: 0.5}})
	rec := &profile.Recorder{}
	s := &backend.Scheduler{Registry: reg, Profile: rec, Trace: true}
	if err := s.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}

	want := matmul(wHost, x.F32, k, n, m)
	t.Run("the values are the device's product, copied back and scaled on the CPU", func(t *testing.T) {
		closeTo(t, "y", y.F32, want)
		half := make([]float64, len(want))
		for i, v := range want {
			half[i] = v / 2
		}
		closeTo(t, "z", z.F32, half)
	})
	t.Run("the assignments are the copy in, the product, the copy back and the scale", func(t *testing.T) {
		var got []string
		for _, a := range s.Assignments {
			got = append(got, a.Op.Kind.String()+" "+a.Op.Name+" on "+a.Backend+" ("+a.Kernel+")")
		}
		wantSeq := []string{"COPY x on DEV (h2d)", "MUL_MAT blk.0.ffn_up on DEV (dev-matmul)", "COPY y on CPU (d2h)", "SCALE scale on CPU (reference)"}
		if strings.Join(got, "; ") != strings.Join(wantSeq, "; ") {
			t.Errorf("assignments:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(wantSeq, "\n  "))
		}
		if dev.allocs != 2 {
			t.Errorf("%d scratch tensors allocated on the device, want 2 (x and y)", dev.allocs)
		}
	})
	t.Run("the reasons read as sentences naming tensor, buffers and op", func(t *testing.T) {
		cases := []struct {
			i    int
			want string
		}{
			{0, "DEV reads DEV0, not CPU, for MUL_MAT blk.0.ffn_up: x is copied into a scratch tensor in DEV0"},
			{1, "it computes MUL_MAT and ADD on tensors in device memory; DEV cannot read x in CPU, so it is copied into DEV0"},
			{2, "CPU reads CPU, not DEV0, for SCALE scale: y is copied back into its own buffer"},
			{3, "CPU computes every op on plain tensors in host memory; CPU cannot read y in DEV0, so it is copied back into its own buffer, CPU (DEV: it has no kernel for this op)"},
		}
		for _, c := range cases {
			if r := s.Assignments[c.i].Reason; !strings.HasPrefix(r, c.want) {
				t.Errorf("reason %d = %q, want it to begin %q", c.i, r, c.want)
			}
		}
	})
	t.Run("the profile lists the copies as COPY ops with their bytes and buffers", func(t *testing.T) {
		if len(rec.Records) != len(s.Assignments) {
			t.Fatalf("%d records for %d assignments", len(rec.Records), len(s.Assignments))
		}
		in, back := rec.Records[0], rec.Records[2]
		if in.Op != "COPY" || in.Bytes != x.Bytes() || in.Buffers != "CPU→DEV0" || in.Backend != "DEV" {
			t.Errorf("copy in recorded as %+v", in)
		}
		if back.Op != "COPY" || back.Bytes != y.Bytes() || back.Buffers != "DEV0→CPU" {
			t.Errorf("copy back recorded as %+v", back)
		}
		if got := rec.Records[1].Buffers; got != "DEV0,DEV0" {
			t.Errorf("the product read buffers %q, want DEV0,DEV0", got)
		}
	})
}

// Each tensor moves once per run however many ops read it, and a value computed into device memory is copied back
// into its own tensor at the end of the graph, so the caller reads it.
func TestAValueLeftOnTheDeviceIsCopiedBackAtTheEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const k, n, m = 32, 32, 2
	reg, dev := devSetup(t)
	w1, h1 := devWeight(rng, "w1", k, n)
	w2, h2 := devWeight(rng, "w2", k, n)
	x := randF32(rng, "x", k, m)
	a, b, c := randF32(rng, "a", n, m), randF32(rng, "b", n, m), randF32(rng, "c", n, m)
	g := &graph.Graph{}
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "p1", Dst: a, Src: []*graph.Tensor{w1, x}})
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "p2", Dst: b, Src: []*graph.Tensor{w2, x}})
	g.Add(&graph.Op{Kind: graph.Add, Name: "sum", Dst: c, Src: []*graph.Tensor{a, b}})
	s := &backend.Scheduler{Registry: reg, Trace: true}
	if err := s.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	want := matmul(h1, x.F32, k, n, m)
	for i, v := range matmul(h2, x.F32, k, n, m) {
		want[i] += v
	}
	closeTo(t, "c", c.F32, want)
	if got := strings.Join(dev.copies, ", "); got != "h2d x, d2h c" {
		t.Errorf("copies %s, want x in once and c back once (a and b never leave the device)", got)
	}
	last := s.Assignments[len(s.Assignments)-1]
	if last.Op.Kind != graph.Copy || last.Backend != "CPU" || !strings.Contains(last.Reason, "c was last computed into DEV0; it is copied back into its own buffer, CPU, at the end of the graph") {
		t.Errorf("last assignment %s on %s: %q", last.Op.Kind, last.Backend, last.Reason)
	}
}

// When one backend can read every input where it is and another would have to copy, the one that copies nothing
// wins, ahead of it in the registry or not, and the reason says why.
func TestTheBackendThatNeedsNoCopyIsPreferred(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	reg, dev := devSetup(t)
	w := randF32(rng, "blk.0.attn_q.weight", 32, 32)
	x, y := randF32(rng, "x", 32, 2), randF32(rng, "y", 32, 2)
	g := &graph.Graph{}
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "blk.0.attn_q", Dst: y, Src: []*graph.Tensor{w, x}})
	s := &backend.Scheduler{Registry: reg, Trace: true}
	if err := s.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if len(s.Assignments) != 1 || s.Assignments[0].Backend != "CPU" {
		t.Fatalf("assignments %+v, want the MUL_MAT alone on the CPU", s.Assignments)
	}
	want := "; chosen over DEV, which would copy blk.0.attn_q.weight from CPU into DEV0 and 1 more"
	if r := s.Assignments[0].Reason; !strings.Contains(r, want) {
		t.Errorf("reason %q lacks %q", r, want)
	}
	if len(dev.copies) != 0 || dev.allocs != 0 {
		t.Errorf("the device was used: copies %v, %d allocations", dev.copies, dev.allocs)
	}
	closeTo(t, "y", y.F32, matmul(w.F32, x.F32, 32, 32, 2))
}

// Seed bug 3 across buffers: a view is scheduled by its source's buffer, and what moves is the source, with the
// backend handed a view of the copy at the same place.
func TestViewsResolveToTheirSourceAcrossCopies(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const k, n, m = 32, 64, 2

	t.Run("a view of a device weight runs on the device without moving the weight", func(t *testing.T) {
		reg, dev := devSetup(t)
		w, wHost := devWeight(rng, "w", k, n)
		v := &graph.Tensor{Name: "w view", Type: tensor.F32, Ne: w.Ne, ViewSrc: w, Extra: backend.Window{Offset: 0, Len: k * n}}
		x, y := randF32(rng, "x", k, m), randF32(rng, "y", n, m)
		g := &graph.Graph{}
		g.Add(&graph.Op{Kind: graph.MulMat, Name: "p", Dst: y, Src: []*graph.Tensor{v, x}})
		s := &backend.Scheduler{Registry: reg, Trace: true}
		if err := s.Run(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(dev.copies, ", "); got != "h2d x, d2h y" {
			t.Errorf("copies %s, want only x in and y back", got)
		}
		closeTo(t, "y", y.F32, matmul(wHost, x.F32, k, n, m))
	})
	t.Run("a view of a device-computed tensor read on the CPU copies its source back once", func(t *testing.T) {
		reg, dev := devSetup(t)
		w, wHost := devWeight(rng, "w", k, n)
		x, y := randF32(rng, "x", k, m), randF32(rng, "y", n, m)
		// two views splitting each row of y in halves
		lo := &graph.Tensor{Name: "y lo", Type: tensor.F32, Ne: [4]int{n / 2, m, 1, 1}, ViewSrc: y, F32: y.F32[:n*m/2]}
		hi := &graph.Tensor{Name: "y hi", Type: tensor.F32, Ne: [4]int{n / 2, m, 1, 1}, ViewSrc: y, F32: y.F32[n*m/2:]}
		zl, zh := randF32(rng, "zl", n/2, m), randF32(rng, "zh", n/2, m)
		g := &graph.Graph{}
		g.Add(&graph.Op{Kind: graph.MulMat, Name: "p", Dst: y, Src: []*graph.Tensor{w, x}})
		g.Add(&graph.Op{Kind: graph.Scale, Name: "lo", Dst: zl, Src: []*graph.Tensor{lo}, Params: graph.Params{Scale: 1}})
		g.Add(&graph.Op{Kind: graph.Scale, Name: "hi", Dst: zh, Src: []*graph.Tensor{hi}, Params: graph.Params{Scale: 1}})
		s := &backend.Scheduler{Registry: reg, Trace: true}
		if err := s.Run(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(dev.copies, ", "); got != "h2d x, d2h y" {
			t.Errorf("copies %s, want x in and y back once", got)
		}
		want := matmul(wHost, x.F32, k, n, m)
		closeTo(t, "zl", zl.F32, want[:n*m/2])
		closeTo(t, "zh", zh.F32, want[n*m/2:])
	})
	t.Run("a view of a device-computed tensor read on the device is a view of the device copy", func(t *testing.T) {
		reg, dev := devSetup(t)
		w1, h1 := devWeight(rng, "w1", k, n)
		w2, h2 := devWeight(rng, "w2", n/2, k)
		x, y := randF32(rng, "x", k, m), randF32(rng, "y", n, m)
		hi := &graph.Tensor{Name: "y hi", Type: tensor.F32, Ne: [4]int{n / 2, m, 1, 1}, ViewSrc: y, F32: y.F32[n*m/2:]}
		z := randF32(rng, "z", k, m)
		g := &graph.Graph{}
		g.Add(&graph.Op{Kind: graph.MulMat, Name: "p1", Dst: y, Src: []*graph.Tensor{w1, x}})
		g.Add(&graph.Op{Kind: graph.MulMat, Name: "p2", Dst: z, Src: []*graph.Tensor{w2, hi}})
		s := &backend.Scheduler{Registry: reg, Trace: true}
		if err := s.Run(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(dev.copies, ", "); got != "h2d x, d2h z" {
			t.Errorf("copies %s, want x in, and only the output z back (y is an intermediate)", got)
		}
		yv := matmul(h1, x.F32, k, n, m)
		hv := make([]float32, n*m/2)
		for i := range hv {
			hv[i] = float32(yv[n*m/2+i])
		}
		closeTo(t, "z", z.F32, matmul(h2, hv, n/2, k, m))

		dev.copies = nil
		s.FlushAll = true
		if err := s.Run(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(dev.copies, ", "); got != "h2d x, d2h y, d2h z" {
			t.Errorf("with FlushAll, copies %s, want x in, then y and z back", got)
		}
		closeTo(t, "y", y.F32, yv)
	})
}

// With every input in memory every backend reads, the scheduler copies nothing and records no COPY.
func TestNothingIsCopiedWhenEveryInputIsReadable(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	reg, dev := devSetup(t)
	w := randF32(rng, "w", 32, 32)
	x, y, z := randF32(rng, "x", 32, 2), randF32(rng, "y", 32, 2), randF32(rng, "z", 32, 2)
	g := &graph.Graph{}
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "p", Dst: y, Src: []*graph.Tensor{w, x}})
	g.Add(&graph.Op{Kind: graph.Scale, Name: "s", Dst: z, Src: []*graph.Tensor{y}, Params: graph.Params{Scale: 2}})
	rec := &profile.Recorder{}
	s := &backend.Scheduler{Registry: reg, Profile: rec, Trace: true}
	if err := s.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if c := copiesOf(s); len(c) != 0 || len(dev.copies) != 0 || dev.allocs != 0 {
		t.Errorf("copies %v (device %v, %d allocations)", c, dev.copies, dev.allocs)
	}
	for _, r := range rec.Records {
		if r.Op == "COPY" {
			t.Errorf("profile has a COPY: %+v", r)
		}
	}
}

// Running a graph of the same shape again reuses the scratch tensors: no allocation on the device or in Go.
func TestScratchIsReusedAcrossRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	reg := backend.NewRegistry()
	dev := &devBuffer{name: "DEV0"}
	reg.AddBufferType(dev)
	reg.AddBackend(&devBackend{name: "DEV", buf: "DEV0"})
	reg.AddBackend(hostScale{})
	w, _ := devWeight(rng, "w", 32, 32)
	x, y, z := randF32(rng, "x", 32, 4), randF32(rng, "y", 32, 4), randF32(rng, "z", 32, 4)
	g := &graph.Graph{}
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "p", Dst: y, Src: []*graph.Tensor{w, x}})
	g.Add(&graph.Op{Kind: graph.Scale, Name: "s", Dst: z, Src: []*graph.Tensor{y}, Params: graph.Params{Scale: 2}})
	s := &backend.Scheduler{Registry: reg}
	ctx := context.Background()
	if err := s.Run(ctx, g); err != nil {
		t.Fatal(err)
	}
	before := dev.allocs
	dev.quiet = true
	allocs := testing.AllocsPerRun(20, func() {
		if err := s.Run(ctx, g); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.0f Go allocations per run of the same graph", allocs)
	}
	if dev.allocs != before {
		t.Errorf("the device allocated %d scratch tensors again", dev.allocs-before)
	}
	s.Release()
	if dev.frees != before {
		t.Errorf("Release freed %d of %d device scratch tensors", dev.frees, before)
	}
}

// Tensors that cannot move make the backend that would need them refuse, with reasons, rather than be misread.
func TestATensorThatCannotMoveIsRefusedWithTheReason(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	reg := backend.NewRegistry()
	reg.AddBackend(&devBackend{name: "DEV", buf: "DEV0"})
	reg.AddBufferType(&devBuffer{name: "DEV0"})
	packed := &graph.Tensor{Name: "blk.0.attn_q.weight", Type: tensor.Q4_0, Ne: [4]int{32, 32, 1, 1}, Layout: amxLayout, BufferType: "AMX"}
	x, y := randF32(rng, "x", 32, 1), randF32(rng, "y", 32, 1)
	g := &graph.Graph{}
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "blk.0.attn_q", Dst: y, Src: []*graph.Tensor{packed, x}})
	err := (&backend.Scheduler{Registry: reg}).Run(context.Background(), g)
	want := "no backend can compute MUL_MAT blk.0.attn_q: DEV: DEV cannot read blk.0.attn_q.weight in AMX, and a tensor in layout amx-int8 is never copied out of its buffer"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

// An op that writes part of a tensor (a window of a KV cache) on the device gets the whole tensor copied in first,
// and the tensor is copied back at the end even though an op read it since: it outlives the graph.
func TestATensorWrittenThroughAViewOnTheDeviceIsKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const n, m, slots = 16, 3, 4
	reg, dev := devSetup(t)
	cache := randF32(rng, "cache_k_l0", n, slots)
	before := append([]float32(nil), cache.F32...)
	win := &graph.Tensor{Name: "cache_k_l0", Type: tensor.F32, Ne: [4]int{n, m, 1, 1}, ViewSrc: cache, F32: cache.F32[n : n+n*m]}
	a, aHost := devWeight(rng, "a", n, m) // both addends already on the device, so the store runs there
	b, bHost := devWeight(rng, "b", n, m)
	w, wHost := devWeight(rng, "w", n, n)
	y := randF32(rng, "y", n, m)
	g := &graph.Graph{}
	g.Add(&graph.Op{Kind: graph.Add, Name: "store", Dst: win, Src: []*graph.Tensor{a, b}})
	g.Add(&graph.Op{Kind: graph.MulMat, Name: "read", Dst: y, Src: []*graph.Tensor{w, win}})
	s := &backend.Scheduler{Registry: reg, Trace: true}
	if err := s.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(dev.copies, ", "); got != "h2d cache_k_l0, d2h cache_k_l0, d2h y" {
		t.Errorf("copies %s", got)
	}
	want := make([]float64, len(before))
	for i, v := range before {
		want[i] = float64(v)
	}
	for i := range n * m {
		want[n+i] = float64(aHost[i]) + float64(bHost[i])
	}
	closeTo(t, "cache", cache.F32, want)
	win32 := make([]float32, n*m)
	for i := range win32 {
		win32[i] = float32(want[n+i])
	}
	closeTo(t, "y", y.F32, matmul(wHost, win32, n, n, m))
}

// The host backends read host memory (their packed layouts are SupportsOp's business) and never device memory,
// so the scheduler copies a device tensor into host memory before they read it.
func TestTheHostBackendsReadHostBuffersOnly(t *testing.T) {
	p := pool.New(1)
	defer p.Close()
	a, err := amx.NewBackend(p, amx.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	readers := []backend.Backend{cpu.New(p, cpu.Options{}), a}
	cases := []struct {
		buffer string
		want   bool
	}{
		{"CPU", true},
		{"", true},
		{"AMX", true},
		{"CUDA_Host", true},
		{"CUDA0", false},
		{"DEV0", false},
	}
	for _, r := range readers {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s reads %q: %v", r.Name(), c.buffer, c.want), func(t *testing.T) {
				br, ok := r.(backend.BufferReader)
				if !ok {
					t.Fatalf("%s does not say which buffers it reads", r.Name())
				}
				if got := br.Reads(c.buffer); got != c.want {
					t.Errorf("Reads(%q) = %v", c.buffer, got)
				}
			})
		}
	}
}
