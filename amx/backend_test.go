package amx

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

func TestBufferTypeAcceptsWithReasons(t *testing.T) {
	bt := NewBufferType()
	for _, c := range []struct {
		name string
		w    backend.WeightInfo
		ok   bool
		want string
	}{
		{"a q4_0 projection is accepted", backend.WeightInfo{Type: tensor.Q4_0, Ne: [4]int{2048, 512, 1, 1}, Op: graph.MulMat}, true, "ne1 512 % 32 == 0"},
		{"q8_0 MoE experts are accepted", backend.WeightInfo{Type: tensor.Q8_0, Ne: [4]int{2048, 768, 128, 1}, Op: graph.MulMatID}, true, "MoE experts"},
		{"bf16 is accepted", backend.WeightInfo{Type: tensor.BF16, Ne: [4]int{100, 64, 1, 1}, Op: graph.MulMat}, true, "bf16"},
		{"f32 is refused", backend.WeightInfo{Type: tensor.F32, Ne: [4]int{2048, 512, 1, 1}, Op: graph.MulMat}, false, "F32 tensors are not packed"},
		{"a row count not a multiple of 32 is refused", backend.WeightInfo{Type: tensor.Q4_0, Ne: [4]int{2048, 48, 1, 1}, Op: graph.MulMat}, false, "ne1 48 is not a multiple of 32"},
		{"a row length not a multiple of the block is refused", backend.WeightInfo{Type: tensor.Q8_0, Ne: [4]int{40, 64, 1, 1}, Op: graph.MulMat}, false, "not a multiple of the block"},
		{"an empty row length is refused", backend.WeightInfo{Type: tensor.Q8_0, Ne: [4]int{0, 64, 1, 1}, Op: graph.MulMat}, false, "ne0 0"},
		{"a negative row length is refused", backend.WeightInfo{Type: tensor.Q4_0, Ne: [4]int{-32, 64, 1, 1}, Op: graph.MulMat}, false, "ne0 -32"},
		{"a weight of no rows is refused", backend.WeightInfo{Type: tensor.BF16, Ne: [4]int{64, 0, 1, 1}, Op: graph.MulMat}, false, "ne1 0"},
		{"a 2-D weight whose outer dimensions are 0 is accepted", backend.WeightInfo{Type: tensor.Q8_0, Ne: [4]int{64, 32, 0, 0}, Op: graph.MulMat}, true, "ne1 32"},
		{"an expert stack of a negative count is refused", backend.WeightInfo{Type: tensor.Q8_0, Ne: [4]int{64, 32, -1, 1}, Op: graph.MulMatID}, false, "ne2 -1"},
		{"k-quants are refused", backend.WeightInfo{Type: tensor.Q4_K, Ne: [4]int{2048, 64, 1, 1}, Op: graph.MulMat}, false, "no AMX layout"},
		{"embeddings are refused", backend.WeightInfo{Type: tensor.Q4_0, Ne: [4]int{2048, 64, 1, 1}, Op: graph.GetRows}, false, "only MUL_MAT and MUL_MAT_ID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ok, why := bt.Accepts(c.w)
			if ok != c.ok || !strings.Contains(why, c.want) {
				t.Fatalf("Accepts = %v, %q; want %v and a reason containing %q", ok, why, c.ok, c.want)
			}
			// A plan may ask the packed size of any weight, refused ones included: never a panic.
			if n := bt.PackedBytes(c.w); c.ok && n <= 0 {
				t.Fatalf("PackedBytes of an accepted weight = %d", n)
			}
		})
	}
}

func TestABufferTypeWithAGroupTheKernelsCannotUseTakesNothing(t *testing.T) {
	for _, g := range []int{100, 16, -64, 48} {
		t.Run(fmt.Sprintf("group %d is refused at Accepts and Import", g), func(t *testing.T) {
			bt := &BufferType{Group: g}
			w := RandomWeight(tensor.Q8_0, 128, 32, 1, rng(1))
			want := fmt.Sprintf("group %d", g)
			if ok, why := bt.Accepts(backend.WeightInfo{Type: w.Type, Ne: w.Ne, Op: graph.MulMat}); ok || !strings.Contains(why, want) {
				t.Fatalf("Accepts = %v, %q; want a refusal naming %q", ok, why, want)
			}
			if err := bt.Import(w); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Import error %v, want one naming %q", err, want)
			}
			if w.Layout != tensor.Plain || w.Extra != nil {
				t.Fatalf("a refused import changed the tensor: layout %s, extra %T", w.Layout, w.Extra)
			}
		})
	}
}

func TestPackedBytesMatchesImportOnEveryMachine(t *testing.T) {
	defer func(d func() Status) { detectStatus = d }(detectStatus)
	machines := []struct {
		name string
		st   Status
	}{
		{"a machine with AMX", Status{Tile: true, Int8: true, BF16: true, OS: true, Permitted: true, VNNI: true, Usable: true, Reason: "AMX usable (injected)"}},
		{"a machine without AMX", Status{Reason: "no AMX: using the emulator (injected)"}},
	}
	cases := []struct {
		typ     tensor.DType
		k, n, e int
		op      graph.Kind
	}{
		{tensor.Q4_0, 96, 32, 1, graph.MulMat},
		{tensor.Q4_0, 2048, 64, 1, graph.MulMat},
		{tensor.Q4_0, 768, 64, 3, graph.MulMatID},
		{tensor.Q8_0, 64, 96, 3, graph.MulMatID},
		{tensor.Q8_0, 1536, 32, 1, graph.MulMat},
		{tensor.F16, 50, 64, 1, graph.MulMat},
		{tensor.BF16, 96, 32, 2, graph.MulMatID},
	}
	first := map[string]int64{}
	for _, m := range machines {
		detectStatus = func() Status { return m.st }
		for _, c := range cases {
			key := fmt.Sprintf("%s %dx%dx%d", c.typ, c.k, c.n, c.e)
			t.Run(key+" stores what PackedBytes says on "+m.name, func(t *testing.T) {
				w := RandomWeight(c.typ, c.k, c.n, c.e, rng(1))
				wi := backend.WeightInfo{Type: c.typ, Ne: w.Ne, Op: c.op}
				bt := NewBufferType()
				if ok, why := bt.Accepts(wi); !ok {
					t.Fatalf("not accepted: %s", why)
				}
				want := bt.PackedBytes(wi)
				if err := bt.Import(w); err != nil {
					t.Fatal(err)
				}
				got := w.Extra.(*weights).bytes()
				if got != want || w.BufferType != Name {
					t.Fatalf("stored %d bytes in %q, PackedBytes said %d", got, w.BufferType, want)
				}
				if f, ok := first[key]; ok && f != got {
					t.Fatalf("%d bytes here, %d on %s", got, f, machines[0].name)
				}
				first[key] = got
				if c.typ == tensor.Q4_0 || c.typ == tensor.Q8_0 {
					if g := w.Extra.(*weights).i8.Group; g != effectiveGroup(DefaultConfig.Group, roundUp(c.k, 64)) {
						t.Fatalf("packed with group %d, not the default configuration's", g)
					}
				}
			})
		}
	}
}

func TestBadInputIsAnErrorNamingTheProblem(t *testing.T) {
	b := newTestBackend(t, Options{Emulate: true})
	packed := func() *graph.Tensor {
		w := RandomWeight(tensor.Q8_0, 64, 32, 4, rng(2))
		if err := NewBufferType().Import(w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	r := rand.New(rand.NewPCG(1, 1))
	cases := []struct {
		name string
		op   func() *graph.Op
		want string
	}{
		{"a plain weight is refused, not read as packed", func() *graph.Op {
			return RandomMulMat(RandomWeight(tensor.Q8_0, 64, 32, 1, r), 3, r)
		}, `layout "plain"`},
		{"a weight with no layout set is plain and refused as such", func() *graph.Op {
			w := RandomWeight(tensor.Q8_0, 64, 32, 1, r)
			w.Layout = ""
			return RandomMulMat(w, 3, r)
		}, `layout "plain"`},
		{"a view of a plain weight is refused as plain", func() *graph.Op {
			w := RandomWeight(tensor.Q8_0, 64, 32, 1, r)
			view := &graph.Tensor{Name: "view", Type: w.Type, Ne: w.Ne, Layout: LayoutInt8, ViewSrc: w}
			return RandomMulMat(view, 3, r)
		}, `layout "plain"`},
		{"a packed layout without its packing is refused", func() *graph.Op {
			w := RandomWeight(tensor.Q8_0, 64, 32, 1, r)
			w.Layout = LayoutInt8
			return RandomMulMat(w, 3, r)
		}, "holds no AMX packing"},
		{"activations of the wrong length are refused", func() *graph.Op {
			w := RandomWeight(tensor.Q8_0, 64, 32, 1, r)
			if err := NewBufferType().Import(w); err != nil {
				t.Fatal(err)
			}
			op := RandomMulMat(w, 3, r)
			op.Src[1].Ne[0] = 32
			return op
		}, "K 64"},
		{"a destination of the wrong shape is refused", func() *graph.Op {
			w := RandomWeight(tensor.Q8_0, 64, 32, 1, r)
			if err := NewBufferType().Import(w); err != nil {
				t.Fatal(err)
			}
			op := RandomMulMat(w, 3, r)
			op.Dst.Ne[0] = 16
			return op
		}, "destination"},
		{"an expert id out of range is refused", func() *graph.Op {
			op := RandomMulMatID(packed(), 5, 2, true, r)
			op.Src[2].I32[3] = 9
			return op
		}, "expert 9 of 4"},
		{"missing expert ids are refused", func() *graph.Op {
			op := RandomMulMatID(packed(), 5, 2, true, r)
			op.Src = op.Src[:2]
			return op
		}, "expert ids"},
		{"f16 activations are refused", func() *graph.Op {
			w := RandomWeight(tensor.Q8_0, 64, 32, 1, r)
			if err := NewBufferType().Import(w); err != nil {
				t.Fatal(err)
			}
			op := RandomMulMat(w, 3, r)
			op.Src[1].Type = tensor.F16
			return op
		}, "activations are f16"},
		{"a view of part of a packed weight is refused, not computed as the whole", func() *graph.Op {
			w := RandomWeight(tensor.Q8_0, 64, 64, 1, r)
			if err := NewBufferType().Import(w); err != nil {
				t.Fatal(err)
			}
			view := &graph.Tensor{Name: "half", Type: w.Type, Ne: [4]int{64, 32, 1, 1}, Layout: w.Layout, ViewSrc: w}
			return RandomMulMat(view, 3, r)
		}, "AMX computes whole weights only"},
		{"other ops are refused", func() *graph.Op {
			op := RandomMulMat(packed(), 3, r)
			op.Kind = graph.Add
			return op
		}, "not ADD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op := c.op()
			ok, why := b.SupportsOp(op)
			_, err := b.Compute(op)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Compute error %v (SupportsOp %v, %q); want one containing %q", err, ok, why, c.want)
			}
		})
	}
	t.Run("an expert stack given to MUL_MAT is refused, not read as its first expert", func(t *testing.T) {
		op := RandomMulMat(packed(), 3, r)
		if _, err := b.Compute(op); err == nil || !strings.Contains(err.Error(), "stack of 4 experts") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("activations given as a view are read through the view", func(t *testing.T) {
		w := RandomWeight(tensor.Q8_0, 64, 32, 1, r)
		if err := NewBufferType().Import(w); err != nil {
			t.Fatal(err)
		}
		plain := RandomMulMat(w, 4, r)
		src := plain.Src[1]
		big := &graph.Tensor{Name: "big", Type: tensor.F32, Ne: [4]int{64, 6, 1, 1}, F32: make([]float32, 64*6)}
		copy(big.F32[64:], src.F32)
		view := &graph.Tensor{Name: "view", Type: tensor.F32, Ne: src.Ne, ViewSrc: big, F32: big.F32[64 : 64+len(src.F32)]}
		want := append([]float32(nil), plain.Dst.F32...)
		if _, err := b.Compute(plain); err != nil {
			t.Fatal(err)
		}
		copy(want, plain.Dst.F32)
		plain.Src[1] = view
		poison(plain.Dst.F32)
		if _, err := b.Compute(plain); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if plain.Dst.F32[i] != want[i] {
				t.Fatalf("element %d through the view: %v, want %v", i, plain.Dst.F32[i], want[i])
			}
		}
	})
	t.Run("importing twice is refused", func(t *testing.T) {
		w := packed()
		if err := NewBufferType().Import(w); err == nil || !strings.Contains(err.Error(), "already in layout amx-int8") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("importing bytes of the wrong size is refused", func(t *testing.T) {
		w := RandomWeight(tensor.Q4_0, 64, 32, 1, r)
		w.Data = w.Data[:len(w.Data)-1]
		if err := NewBufferType().Import(w); err == nil || !strings.Contains(err.Error(), "want 1152") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestRegisterAddsBufferTypeAndBackend(t *testing.T) {
	t.Setenv("TILELAB_AMX_CALIBRATION", t.TempDir()+"/none.json")
	reg := backend.NewRegistry()
	b, err := Register(reg, testPool)
	if err != nil {
		t.Fatal(err)
	}
	if bt, err := reg.BufferType(Name); err != nil || bt.Name() != Name {
		t.Fatalf("buffer type: %v %v", bt, err)
	}
	if len(reg.Backends()) != 1 || reg.Backends()[0] != backend.Backend(b) {
		t.Fatalf("backends %v", reg.Backends())
	}
	if d := b.Describe(); !strings.Contains(d, "AMX:") || !strings.Contains(d, "default (not calibrated)") {
		t.Fatalf("Describe: %q", d)
	}
}

func TestCalibrationIsStoredAndRead(t *testing.T) {
	path := t.TempDir() + "/cal.json"
	t.Setenv("TILELAB_AMX_CALIBRATION", path)
	c := Calibration{CPU: cpuModel(), When: "now", Threads: 3, Threshold: 24, ThresholdBF16: 12, Against: calibratedAgainst}
	if _, err := c.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCalibration()
	if err != nil || got.Threshold != 24 || got.ThresholdBF16 != 12 {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	b, err := NewBackend(testPool, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Threshold != 24 || b.ThresholdBF16 != 12 || !strings.HasPrefix(b.ThresholdSource, "calibrated") {
		t.Fatalf("backend threshold %d/%d from %q", b.Threshold, b.ThresholdBF16, b.ThresholdSource)
	}
	t.Setenv("TILELAB_AMX_THRESHOLD", "7")
	if b, err = NewBackend(testPool, Options{}); err != nil || b.Threshold != 7 {
		t.Fatalf("override: %v %v", b, err)
	}
	t.Setenv("TILELAB_AMX_THRESHOLD", "many")
	if _, err = NewBackend(testPool, Options{}); err == nil || !strings.Contains(err.Error(), "TILELAB_AMX_THRESHOLD") {
		t.Fatalf("bad override error %v", err)
	}
	t.Setenv("TILELAB_AMX_THRESHOLD", "")
	old := c
	old.Against = ""
	if _, err := old.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCalibration(); err == nil || !strings.Contains(err.Error(), "calibrate again") {
		t.Fatalf("a calibration against the old small-batch path was accepted: %v", err)
	}
	if b, err = NewBackend(testPool, Options{}); err != nil || b.Threshold != DefaultThreshold ||
		!strings.Contains(b.ThresholdSource, "stored calibration not used") || !strings.Contains(b.Describe(), "calibrate again") {
		t.Fatalf("an unusable calibration: threshold %d from %q (%v)", b.Threshold, b.ThresholdSource, err)
	}
	zero := c
	zero.ThresholdBF16 = 0
	if _, err := zero.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCalibration(); err == nil || !strings.Contains(err.Error(), "bf16 0") {
		t.Fatalf("a calibration without a bf16 threshold was accepted: %v", err)
	}
	c.CPU = "another CPU"
	if _, err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCalibration(); err == nil || !strings.Contains(err.Error(), "another CPU") {
		t.Fatalf("a calibration from another CPU was accepted: %v", err)
	}
}

func TestDetectionExplainsItself(t *testing.T) {
	st := Detect()
	if st.Reason == "" || st.Emulated() == st.Usable {
		t.Fatalf("status %+v", st)
	}
	if !st.Usable && !strings.Contains(st.Reason, "emulator") {
		t.Fatalf("an unusable AMX must say the emulator runs: %q", st.Reason)
	}
	if st.Usable {
		if _, _, err := Peak(testPool); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, _, err := Peak(testPool); err != ErrEmulated {
		t.Fatalf("Peak on the emulator: %v, want ErrEmulated", err)
	}
	if _, err := Calibrate(testPool, TileConfig{}); err != ErrEmulated {
		t.Fatalf("Calibrate on the emulator: %v, want ErrEmulated", err)
	}
	b := newTestBackend(t, Options{})
	w := RandomWeight(tensor.Q8_0, 64, 32, 1, rng(3))
	if err := NewBufferType().Import(w); err != nil {
		t.Fatal(err)
	}
	op := RandomMulMat(w, 40, rng(4))
	name := runOp(t, b, 0, op)
	if !strings.Contains(name, "(emulated)") {
		t.Fatalf("kernel name %q does not say emulated", name)
	}
	if _, _, err := TimeOp(b, op, 1); err != ErrEmulated {
		t.Fatalf("TimeOp on the emulator: %v", err)
	}
}

func TestTheCalibratedThresholdIsWhereTheTilesWinFromThenOn(t *testing.T) {
	ms := []int{1, 2, 4, 8, 16, 32}
	for _, c := range []struct {
		name string
		wins []int
		want int
	}{
		{"tiles winning from 8 up give 8", []int{8, 16, 32}, 8},
		{"a lone early win does not lower it", []int{2, 16, 32}, 16},
		{"a lost point high up raises it past that point", []int{4, 8, 32}, 32},
		{"tiles never winning at the top keep every batch on CPU mode's kernel", []int{4, 8, 16}, 1 << 30},
		{"tiles winning everywhere give 1", ms, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			wins := map[int]bool{}
			for _, m := range c.wins {
				wins[m] = true
			}
			if got := crossover(ms, wins); got != c.want {
				t.Fatalf("crossover %d, want %d", got, c.want)
			}
		})
	}
}

func TestTimeOpRefusesNoRepetitions(t *testing.T) {
	w := RandomWeight(tensor.Q8_0, 64, 32, 1, rng(3))
	if err := NewBufferType().Import(w); err != nil {
		t.Fatal(err)
	}
	b := newTestBackend(t, Options{})
	if _, _, err := TimeOp(b, RandomMulMat(w, 4, rng(4)), 0); err == nil || !strings.Contains(err.Error(), "0 repetitions") {
		t.Fatalf("error %v, want one naming 0 repetitions", err)
	}
}

func TestSweepRefusesAnEmptyShape(t *testing.T) {
	for _, sh := range [][3]int{{0, 32, 64}, {16, 0, 64}, {16, 32, -32}} {
		t.Run(fmt.Sprintf("%dx%dx%d is refused naming the shape", sh[0], sh[1], sh[2]), func(t *testing.T) {
			_, err := Sweep(testPool, tensor.Q8_0, sh[0], sh[1], sh[2], []TileConfig{DefaultConfig}, 1)
			if want := fmt.Sprintf("%dx%dx%d", sh[0], sh[1], sh[2]); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one naming %s", err, want)
			}
		})
	}
}

// TestTheEmulatorIsNeverTimed runs on every machine: with detection standing in for a machine without AMX, every
// timed function refuses, and a backend asked to emulate is refused timing even where AMX is usable.
func TestTheEmulatorIsNeverTimed(t *testing.T) {
	w := RandomWeight(tensor.Q8_0, 64, 32, 1, rng(3))
	if err := NewBufferType().Import(w); err != nil {
		t.Fatal(err)
	}
	op := RandomMulMat(w, 40, rng(4))
	emulating := newTestBackend(t, Options{Emulate: true})
	defer func(d func() Status) { detectStatus = d }(detectStatus)
	detectStatus = func() Status { return Status{Reason: "no AMX: using the emulator (injected)"} }
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"Peak refuses", func() error { _, _, err := Peak(testPool); return err }},
		{"Sweep refuses", func() error {
			_, err := Sweep(testPool, tensor.Q8_0, 16, 32, 64, []TileConfig{DefaultConfig}, 1)
			return err
		}},
		{"Calibrate refuses", func() error { _, err := Calibrate(testPool, TileConfig{}); return err }},
		{"TimeOp refuses a backend that emulates", func() error { _, _, err := TimeOp(emulating, op, 1); return err }},
	} {
		t.Run(c.name+" on the emulator", func(t *testing.T) {
			if err := c.run(); !errors.Is(err, ErrEmulated) {
				t.Fatalf("error %v, want ErrEmulated", err)
			}
		})
	}
}
