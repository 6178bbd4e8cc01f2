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
