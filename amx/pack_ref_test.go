package amx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"tilelab/engine/tensor"
)

// packInt8Ref is packInt8 as first written (per element: dequantize, requantize with math.Round, index the layout):
// the fast one must give the same bytes, scales and sums.
func packInt8Ref(t tensor.DType, data []byte, n, k, e, group int) *packedInt8 {
	rowBytes := t.RowBytes(k)
	np, kp, g, groups, _ := int8Sizes(n, k, e, group)
	p := &packedInt8{Src: t, E: e, N: n, K: k, Np: np, Kp: kp, Group: g, Groups: groups,
		Q: make([]byte, e*np*kp), WS: make([]float32, e*np*groups), WSum: make([]int32, e*np*groups)}
	var q [32]int8
	vals := make([]float32, g)
	qs := make([]int8, kp)
	ds := make([]float32, kp/32)
	for i := 0; i < e*n; i++ {
		ex, r := i/n, i%n
		row := data[i*rowBytes:]
		clear(qs)
		for b := 0; b < k/32; b++ {
			ds[b] = blockInt8(t, row[b*t.BlockBytes():], &q)
			copy(qs[b*32:], q[:])
		}
		for gi := 0; gi < groups; gi++ {
			var scale float32
			if g == 32 {
				if gi < k/32 {
					scale = ds[gi]
				}
			} else {
				var amax float32
				for j := 0; j < g; j++ {
					kk := gi*g + j
					v := float32(0)
					if kk < k {
						v = ds[kk/32] * float32(qs[kk])
					}
					vals[j] = v
					amax = max(amax, float32(math.Abs(float64(v))))
				}
				scale = amax / 127
				for j := 0; j < g; j++ {
					qs[gi*g+j] = 0
					if scale != 0 {
						qs[gi*g+j] = int8(math.Round(float64(vals[j] / scale)))
					}
				}
			}
			var sum int32
			for j := gi * g; j < (gi+1)*g; j++ {
				p.Q[p.qIndex(ex, r, j)] = byte(qs[j])
				sum += int32(qs[j])
			}
			p.WS[p.sIndex(ex, r, gi)] = scale
			p.WSum[p.sIndex(ex, r, gi)] = sum
		}
	}
	return p
}

func TestPackInt8MatchesTheElementByElementPacking(t *testing.T) {
	for _, typ := range []tensor.DType{tensor.Q4_0, tensor.Q8_0} {
		for _, c := range []struct{ k, n, e, group int }{{96, 20, 1, 32}, {96, 20, 2, 64}, {512, 33, 1, 512}, {768, 40, 3, 512}, {256, 16, 1, 0}, {2048, 70, 2, 512}} {
			t.Run(fmt.Sprintf("%s k=%d n=%d e=%d group %d", typ, c.k, c.n, c.e, c.group), func(t *testing.T) {
				w := RandomWeight(typ, c.k, c.n, c.e, rng(uint64(c.k+c.n)))
				got, err := packInt8(typ, w.Data, c.n, c.k, c.e, c.group)
				if err != nil {
					t.Fatal(err)
				}
				want := packInt8Ref(typ, w.Data, c.n, c.k, c.e, c.group)
				for i := range want.Q {
					if got.Q[i] != want.Q[i] {
						t.Fatalf("byte %d: %d, want %d", i, int8(got.Q[i]), int8(want.Q[i]))
					}
				}
				for i := range want.WS {
					if math.Float32bits(got.WS[i]) != math.Float32bits(want.WS[i]) || got.WSum[i] != want.WSum[i] {
						t.Fatalf("scale %d: %v (sum %d), want %v (sum %d)", i, got.WS[i], got.WSum[i], want.WS[i], want.WSum[i])
					}
				}
			})
		}
	}
}

// packBF16Ref is packBF16 as first written, indexing the layout per element.
func packBF16Ref(t tensor.DType, data []byte, n, k, e int) *packedBF16 {
	np, kp, _ := bf16Sizes(n, k, e)
	p := &packedBF16{Src: t, E: e, N: n, K: k, Np: np, Kp: kp, B: make([]byte, 2*e*np*kp)}
	for i := 0; i < e*n; i++ {
		ex, r := i/n, i%n
		for j := 0; j < k; j++ {
			h := binary.LittleEndian.Uint16(data[2*(i*k+j):])
			if t == tensor.F16 {
				h = tensor.F32ToBF16(tensor.F16ToF32(h))
			}
			binary.LittleEndian.PutUint16(p.B[p.bIndex(ex, r, j):], h)
		}
	}
	return p
}

func TestPackBF16MatchesTheElementByElementPacking(t *testing.T) {
	for _, typ := range []tensor.DType{tensor.F16, tensor.BF16} {
		for _, c := range []struct{ k, n, e int }{{32, 16, 1}, {96, 20, 2}, {100, 33, 1}, {512, 70, 3}} {
			w := RandomWeight(typ, c.k, c.n, c.e, rng(uint64(c.k*c.n)))
			got, err := packBF16(typ, w.Data, c.n, c.k, c.e)
			if err != nil {
				t.Fatal(err)
			}
			want := packBF16Ref(typ, w.Data, c.n, c.k, c.e)
			if !bytes.Equal(got.B, want.B) {
				t.Fatalf("%s k=%d n=%d e=%d: the packings differ", typ, c.k, c.n, c.e)
			}
		}
	}
}

func BenchmarkPackInt8(b *testing.B) {
	w := RandomWeight(tensor.Q4_0, 2048, 768, 8, rng(1))
	b.SetBytes(int64(len(w.Data)))
	for b.Loop() {
		if _, err := packInt8(w.Type, w.Data, 768, 2048, 8, 512); err != nil {
			b.Fatal(err)
		}
	}
}
