package amx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// Peak measures the tile unit's rate on all of p's workers with a tight loop of 2x2 tile dot products whose
// operands never leave the tiles: int8 in TOPS (TDPBSSD) and bf16 in TFLOPS (TDPBF16PS). It refuses to time
// the emulator.
func Peak(p *pool.Pool) (int8TOPS, bf16TFLOPS float64, err error) {
	if !detectStatus().Usable {
		return 0, 0, ErrEmulated
	}
	ws := make([]workspace, p.Threads())
	for i := range ws {
		for j := range ws[i].scratch {
			ws[i].scratch[j] = byte(j*7 + 1)
		}
	}
	rate := func(int8 bool, opsPerIter float64) float64 {
		const iters = 200000
		p.Run(p.Threads(), func(_, w int) { peakCall(&ws[w], int8, 1000) }) // warm up
		best := 0.0
		for rep := 0; rep < 3; rep++ {
			t0 := time.Now()
			p.Run(p.Threads(), func(_, w int) { peakCall(&ws[w], int8, iters) })
			r := opsPerIter * iters * float64(p.Threads()) / time.Since(t0).Seconds() / 1e12
			best = max(best, r)
		}
		return best
	}
	// One iteration: four tiles of 16 x 16 outputs over 64 int8 (or 32 bf16) K values, 2 ops per multiply-add.
	return rate(true, 4*16*16*64*2), rate(false, 4*16*16*32*2), nil
}

// SweepRow is one timed tile configuration.
type SweepRow struct {
	Config  TileConfig
	Type    string
	Shape   string  // "MxNxK" or "moe E/U T KxN"
	Seconds float64 // median
	TOPS    float64 // tera-operations per second (2 per multiply-add)
	RelErr  float64 // ‖out − float64 reference‖ / ‖reference‖ on a sample of rows
	Kernel  string
}

// TimeOp runs op on b reps times (after a warm-up) and returns the median time and the kernel name.
func TimeOp(b *Backend, op *graph.Op, reps int) (time.Duration, string, error) {
	if reps < 1 {
		return 0, "", fmt.Errorf("timing %s %s: %d repetitions, want at least 1", op.Kind, op.Name, reps)
	}
	if b.Emulated() {
		return 0, "", ErrEmulated
	}
	// Warm-up: one call per activation buffer of the engine's ring, so no timed call allocates or faults in a
	// buffer of its own.
	var name string
	for i := 0; i < actRing; i++ {
		var err error
		if name, err = b.Compute(op); err != nil {
			return 0, "", err
		}
	}
	ts := make([]time.Duration, reps)
	for i := range ts {
		t0 := time.Now()
		if _, err := b.Compute(op); err != nil {
			return 0, "", err
		}
		ts[i] = time.Since(t0)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts[len(ts)/2], name, nil
}

// Sweep times a MUL_MAT of an m x n x k shape of type t under each configuration (repacking the weight for each
// group it meets) and reports the error of each against the float64 meaning of the weights. The configurations
// are timed in interleaved rounds (reps rounds of three runs each) and each row is the median of its runs, so a
// machine whose speed drifts during the sweep does not favour whichever configuration ran at a good moment.
func Sweep(p *pool.Pool, t tensor.DType, m, n, k int, configs []TileConfig, reps int) ([]SweepRow, error) {
	if m < 1 || n < 1 || k < 1 {
		return nil, fmt.Errorf("AMX sweep of %dx%dx%d (MxNxK): every dimension must be at least 1", m, n, k)
	}
	if !detectStatus().Usable {
		return nil, ErrEmulated
	}
	r := rand.New(rand.NewPCG(11, 12))
	plain := RandomWeight(t, k, n, 1, r)
	op := RandomMulMat(plain, m, r)
	ref := sampleRef(plain, op.Src[1].F32, k, n, m)
	packed := map[int]*graph.Tensor{}
	backends := make([]*Backend, len(configs))
	weights := make([]*graph.Tensor, len(configs))
	rows := make([]SweepRow, len(configs))
	for i, c := range configs {
		g := c.Group
		if t == tensor.F16 || t == tensor.BF16 {
			g = 0
		}
		w := packed[g]
		if w == nil {
			w = &graph.Tensor{Name: plain.Name, Type: t, Ne: plain.Ne, Layout: tensor.Plain, Data: append([]byte(nil), plain.Data...)}
			if err := (&BufferType{Group: g}).Import(w); err != nil {
				return nil, err
			}
			packed[g] = w
		}
		b, err := NewBackend(p, Options{Config: c, Threshold: 1})
		if err != nil {
			return nil, err
		}
		backends[i], weights[i] = b, w
		op.Src[0] = w
		_, name, err := TimeOp(b, op, 1)
		if err != nil {
			return nil, err
		}
		rows[i] = SweepRow{Config: c, Type: t.String(), Shape: fmt.Sprintf("%dx%dx%d", m, n, k), RelErr: ref.err(op.Dst.F32), Kernel: name}
	}
	medians, err := interleavedMedians(len(configs), reps, func(i int) error {
		op.Src[0] = weights[i]
		_, err := backends[i].Compute(op)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range rows {
		d := medians[i]
		rows[i].Seconds = d.Seconds()
		rows[i].TOPS = 2 * float64(m) * float64(n) * float64(k) / d.Seconds() / 1e12
	}
	return rows, nil
}

// interleavedMedians times run(i) for every i in [0, n) in rounds (at least one) of three runs each, the i
// interleaved within a round, and returns each i's median: a machine whose speed drifts during the measurement
// then does not favour whichever i ran at a good moment.
func interleavedMedians(n, rounds int, run func(i int) error) ([]time.Duration, error) {
	times := make([][]time.Duration, n)
	for round := 0; round < max(1, rounds); round++ {
		for i := range times {
			for j := 0; j < 3; j++ {
				t0 := time.Now()
				if err := run(i); err != nil {
					return nil, err
				}
				times[i] = append(times[i], time.Since(t0))
			}
		}
	}
	medians := make([]time.Duration, n)
	for i, ts := range times {
		sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
		medians[i] = ts[len(ts)/2]
	}
	return medians, nil
}

// refSample is the float64 result of a few rows of a MUL_MAT, to measure error without a full reference GEMM.
type refSample struct {
	n    int
	rows []int
	want [][]float64
}

func sampleRef(w *graph.Tensor, x []float32, k, n, m int) refSample {
	s := refSample{n: n}
	wrows := make([][]float32, n)
	for j := 0; j < n; j++ {
		wrows[j] = make([]float32, k)
		deq(w, j, wrows[j])
	}
	for _, r := range []int{0, m / 3, m - 1} {
		out := make([]float64, n)
		for j := 0; j < n; j++ {
			var acc float64
			for i := 0; i < k; i++ {
				acc += float64(wrows[j][i]) * float64(x[r*k+i])
			}
			out[j] = acc
		}
		s.rows = append(s.rows, r)
		s.want = append(s.want, out)
	}
	return s
}

func (s refSample) err(got []float32) float64 {
	var num, den float64
	for i, r := range s.rows {
		for j, w := range s.want[i] {
			d := float64(got[r*s.n+j]) - w
			num += d * d
			den += w * w
		}
	}
	if den == 0 {
		return 0
	}
	return math.Sqrt(num / den)
}

// deq dequantizes row r of a plain weight into out. The weight's type is one Import accepted, all of which
// tensor.Dequantize decodes, so it cannot fail.
func deq(w *graph.Tensor, r int, out []float32) {
	rb := w.Type.RowBytes(w.Ne[0])
	_ = tensor.Dequantize(w.Type, w.Data[r*rb:(r+1)*rb], out[:w.Ne[0]])
}

// SweepTable formats sweep rows as a Markdown table, fastest first within each shape.
func SweepTable(rows []SweepRow) string {
	var s strings.Builder
	s.WriteString("| type | shape | config | ms | TOPS | rel. error | kernel |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&s, "| %s | %s | %s | %.3f | %.2f | %.2g | %s |\n", r.Type, r.Shape, r.Config, r.Seconds*1e3, r.TOPS, r.RelErr, r.Kernel)
	}
	return s.String()
}
