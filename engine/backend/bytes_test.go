package backend

import (
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

func TestBytesCountsOnlyWhatAnOpReads(t *testing.T) {
	table := &graph.Tensor{Type: tensor.Q8_0, Ne: [4]int{64, 1000, 1, 1}}
	ids := &graph.Tensor{Type: tensor.I32, Ne: [4]int{3, 1, 1, 1}, I32: []int32{5, 7, 5}}
	out := &graph.Tensor{Type: tensor.F32, Ne: [4]int{64, 3, 1, 1}}
	rowBytes := int64(tensor.Q8_0.RowBytes(64))
	t.Run("GET_ROWS reads the fetched rows, not the table", func(t *testing.T) {
		got := Bytes(&graph.Op{Kind: graph.GetRows, Src: []*graph.Tensor{table, ids}, Dst: out})
		want := 3*rowBytes + ids.Bytes() + out.Bytes()
		if got != want {
			t.Fatalf("Bytes = %d, want %d", got, want)
		}
	})
	t.Run("MUL_MAT_ID reads each chosen expert once", func(t *testing.T) {
		experts := &graph.Tensor{Type: tensor.Q8_0, Ne: [4]int{64, 32, 8, 1}}
		x := &graph.Tensor{Type: tensor.F32, Ne: [4]int{64, 1, 1, 1}}
		dst := &graph.Tensor{Type: tensor.F32, Ne: [4]int{32, 3, 1, 1}}
		got := Bytes(&graph.Op{Kind: graph.MulMatID, Src: []*graph.Tensor{experts, x, ids}, Dst: dst})
		want := 2*32*rowBytes + x.Bytes() + ids.Bytes() + dst.Bytes()
		if got != want {
			t.Fatalf("Bytes = %d, want %d", got, want)
		}
	})
}

func TestFusedOpsCountTheirProductsAndTheExpertsTheyRead(t *testing.T) {
	const k, n, e = 64, 32, 8
	rowBytes := int64(tensor.Q4_0.RowBytes(k))
	w := func() *graph.Tensor { return &graph.Tensor{Type: tensor.Q4_0, Ne: [4]int{k, n, e, 1}} }
	f32 := func(ne ...int) *graph.Tensor {
		t := &graph.Tensor{Type: tensor.F32, Ne: [4]int{1, 1, 1, 1}}
		copy(t.Ne[:], ne)
		return t
	}
	ids := &graph.Tensor{Type: tensor.I32, Ne: [4]int{2, 3, 1, 1}, I32: []int32{1, 4, 4, 6, 1, 6}} // 3 distinct of 6
	cases := []struct {
		name         string
		op           *graph.Op
		bytes, flops int64
	}{
		{"MUL_MAT_ID_SWIGLU reads the chosen experts of both gate and up once each", func() *graph.Op {
			return &graph.Op{Kind: graph.MulMatIDSwiGLU, Src: []*graph.Tensor{w(), w(), f32(k, 1, 3), ids}, Dst: f32(n, 2, 3)}
		}(), 2*3*n*rowBytes + 4*k*3 + 4*6 + 4*n*6, 2*2*k*n*6 + n*6},
		{"MUL_MAT_ID_SUM reads the chosen experts once, plus weights and residual", func() *graph.Op {
			return &graph.Op{Kind: graph.MulMatIDSum, Src: []*graph.Tensor{w(), f32(k, 2, 3), ids, f32(2, 3), f32(n, 3)}, Dst: f32(n, 3)}
		}(), 3*n*rowBytes + 4*k*6 + 4*6 + 4*6 + 4*n*3 + 4*n*3, 2*k*n*6 + n*3},
		{"MUL_MATS counts every product over the shared input", func() *graph.Op {
			a, b := &graph.Tensor{Type: tensor.Q4_0, Ne: [4]int{k, n, 1, 1}}, &graph.Tensor{Type: tensor.Q4_0, Ne: [4]int{k, 2 * n, 1, 1}}
			return &graph.Op{Kind: graph.MulMats, Src: []*graph.Tensor{a, b, f32(k, 5)}, Dst: f32(3 * n * 5)}
		}(), 3*n*rowBytes + 4*k*5 + 4*3*n*5, 2 * k * 3 * n * 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Bytes(c.op); got != c.bytes {
				t.Errorf("Bytes = %d, want %d", got, c.bytes)
			}
			if got := Flops(c.op); got != c.flops {
				t.Errorf("Flops = %d, want %d", got, c.flops)
			}
		})
	}
}
