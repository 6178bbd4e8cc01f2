package graph

import (
	"fmt"
	"testing"
	"unsafe"

	"tilelab/engine/tensor"
)

// build is a small pass of the shape a decode step has: activations, a view, ops with several sources.
func build(b *Builder, w *Tensor, m int) *Tensor {
	b.Reset()
	ids := b.Arena.NewI32("ids", m)
	x := b.GetRows("embd", w, ids)
	b.Layer = 0
	h := b.RMSNorm("norm", x, nil, 1e-6)
	y := b.MulMat("mm", w, h)
	v := b.Arena.View(y, 0, 2, y.Ne[0]/2, m)
	return b.SoftMax("sm", v)
}

func TestBuilderReusesItsStorageAcrossPasses(t *testing.T) {
	w := &Tensor{Name: "w", Type: tensor.F32, Ne: [4]int{8, 8, 1, 1}, F32: make([]float32, 64)}
	b := NewBuilder()
	build(b, w, 3) // warm up: the arena grows to the pass's size
	allocs := testing.AllocsPerRun(50, func() { build(b, w, 3) })
	if allocs != 0 {
		t.Fatalf("%.1f allocations per rebuilt pass, want 0", allocs)
	}
	if n := len(b.Graph.Ops); n != 4 {
		t.Fatalf("%d ops, want 4", n)
	}
}

func TestBuilderRecordsOpsInOrderWithTheirLayer(t *testing.T) {
	w := &Tensor{Name: "w", Type: tensor.F32, Ne: [4]int{8, 8, 1, 1}, F32: make([]float32, 64)}
	b := NewBuilder()
	out := build(b, w, 5)
	want := []struct {
		kind  Kind
		layer int
	}{{GetRows, -1}, {RMSNorm, 0}, {MulMat, 0}, {SoftMax, 0}}
	for i, op := range b.Graph.Ops {
		if op.Kind != want[i].kind || op.Layer != want[i].layer {
			t.Fatalf("op %d is %s in layer %d, want %s in layer %d", i, op.Kind, op.Layer, want[i].kind, want[i].layer)
		}
	}
	if out.Ne != [4]int{2, 4, 5, 1} || len(out.F32) != 40 {
		t.Fatalf("softmax output %v with %d floats", out.Ne, len(out.F32))
	}
	mm := b.Graph.Ops[2].Dst
	if mm.Ne != [4]int{8, 5, 1, 1} {
		t.Fatalf("MUL_MAT output shape %v, want [8 5 1 1]", mm.Ne)
	}
	sm := b.Graph.Ops[3]
	if sm.Src[0].Source() != mm || &sm.Src[0].F32[0] != &mm.F32[0] {
		t.Fatal("the view does not share its source's storage")
	}
}

func TestArenaGrowsWithoutMovingWhatItHandedOut(t *testing.T) {
	var a Arena
	first := a.NewF32("a", 10)
	first.F32[0] = 42
	big := a.NewF32("b", 1000) // overflows the empty main block
	big.F32[999] = 7
	if first.F32[0] != 42 || big.F32[999] != 7 {
		t.Fatal("storage handed out earlier was disturbed")
	}
	a.Reset()
	if got := a.Floats(); got < 1010 {
		t.Fatalf("after Reset the main block holds %d floats, want at least 1010", got)
	}
	c := a.NewF32("c", 1010)
	if &c.F32[0] != &a.regions[0].f32[0] {
		t.Fatal("a pass of the same size did not fit the merged block")
	}
}

func TestLayersTwoApartShareStorageAndNeighboursDoNot(t *testing.T) {
	b := NewBuilder()
	pass := func() (in *Tensor, layer [4]*Tensor, head *Tensor) {
		b.Reset()
		in = b.Arena.NewF32("in", 64)
		for l := range layer {
			b.SetLayer(l)
			layer[l] = b.Arena.NewF32(fmt.Sprintf("l%d", l), 100+l)
		}
		b.SetLayer(-1)
		head = b.Arena.NewF32("head", 8)
		return
	}
	pass() // sizes the regions
	in, layer, head := pass()
	for i, s := range [][]float32{in.F32, layer[0].F32, layer[1].F32, head.F32} {
		for j, u := range [][]float32{in.F32, layer[0].F32, layer[1].F32, head.F32} {
			if i != j && overlap(s, u) {
				t.Fatalf("tensors %d and %d of the same or neighbouring layers overlap", i, j)
			}
		}
	}
	if !overlap(layer[0].F32, layer[2].F32) || !overlap(layer[1].F32, layer[3].F32) {
		t.Fatal("layer l+2 did not reuse the storage of layer l")
	}
	if overlap(layer[2].F32, layer[3].F32) || overlap(layer[3].F32, head.F32) || overlap(layer[3].F32, in.F32) {
		t.Fatal("the last layer's storage overlaps its neighbour's, the head's or the inputs'")
	}
	if got, want := b.Arena.Floats(), 64+8+102+103; got != want {
		t.Fatalf("the arena keeps %d floats, want %d (the inputs and head, and the largest even and odd layer)", got, want)
	}
	if b.Arena.SetLayer(3); b.Arena.cur != 2 {
		t.Fatal("staying in a layer moved the arena")
	}
}

// overlap reports whether two slices share any element.
func overlap(a, b []float32) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, a1 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&a[len(a)-1]))
	b0, b1 := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[len(b)-1]))
	return a0 <= b1 && b0 <= a1
}

func TestViewOutsideItsSourcePanicsWithTheNames(t *testing.T) {
	var a Arena
	src := a.NewF32("src", 4)
	defer func() {
		r := recover()
		if s, ok := r.(string); !ok || s == "" {
			t.Fatalf("recovered %v, want a message", r)
		}
	}()
	a.View(src, 2, 4)
}
