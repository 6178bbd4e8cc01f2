package amx

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"

	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

func needAMX(t *testing.T) {
	t.Helper()
	if st := Detect(); !st.Usable {
		t.Skipf("needs AMX hardware: %s", st.Reason)
	}
}

// TestHardwareMatchesEmulator runs every arrangement on the tile unit and in the emulator on the same inputs:
// int8 must agree bit for bit, bf16 within EmulatedBF16Tolerance (the largest difference is logged, so the
// stated tolerance is checked against the hardware).
func TestHardwareMatchesEmulator(t *testing.T) {
	needAMX(t)
	var worstBF16 float64
	for _, typ := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.BF16} {
		for _, a := range [][2]int{{2, 2}, {1, 4}, {4, 1}, {1, 2}, {2, 1}, {1, 1}} {
			for _, cfg := range []TileConfig{
				{Rows: 16, KStep: 64, MT: a[0], NT: a[1], Group: 32},
				{Rows: 16, KStep: 32, MT: a[0], NT: a[1], Group: 0},
				{Rows: 11, KStep: 64, MT: a[0], NT: a[1], Group: 128, Chunk: 128},
			} {
				t.Run(fmt.Sprintf("%s %s agrees with the emulator", typ, cfg), func(t *testing.T) {
					r := rng(uint64(a[0]*10 + a[1]))
					const m, n, k = 70, 192, 512
					w := RandomWeight(typ, k, n, 1, r)
					if err := (&BufferType{Group: cfg.Group}).Import(w); err != nil {
						t.Fatal(err)
					}
					op := RandomMulMat(w, m, r)
					emu := newTestBackend(t, Options{Config: cfg, Threshold: 1, Emulate: true})
					emu.eng.spread = 0
					runOp(t, emu, 0, op)
					want := append([]float32(nil), op.Dst.F32...)
					hw := newTestBackend(t, Options{Config: cfg, Threshold: 1})
					hw.eng.spread = 0
					if typ != tensor.BF16 {
						// Both int8 kernels (sums scaled during the next block, or before it) compute the emulator's bits.
						for _, plain := range []bool{false, true} {
							hw.eng.plainInt8 = plain
							runOp(t, hw, 0, op)
							for i, got := range op.Dst.F32 {
								if math.Float32bits(got) != math.Float32bits(want[i]) {
									t.Fatalf("plain kernel %v, element %d: hardware %v, emulator %v", plain, i, got, want[i])
								}
							}
						}
						return
					}
					runOp(t, hw, 0, op)
					got := op.Dst.F32
					var maxd, maxv float64
					for i := range want {
						maxd = max(maxd, math.Abs(float64(got[i]-want[i])))
						maxv = max(maxv, math.Abs(float64(want[i])))
					}
					rel := maxd / maxv
					worstBF16 = max(worstBF16, rel)
					if rel > EmulatedBF16Tolerance {
						t.Fatalf("bf16: hardware and emulator differ by %.3g of the largest output (tolerance %g)", rel, EmulatedBF16Tolerance)
					}
				})
			}
		}
	}
	t.Logf("largest bf16 difference between hardware and emulator: %.3g of the largest output", worstBF16)
}

// TestTileKernelsSurviveGoroutineChurn runs the hardware kernels from 32 goroutines at once (each with its own
// backend on a one-worker pool, so every call runs on the goroutine itself) while the garbage collector runs:
// tile state must never leak across goroutine switches.
func TestTileKernelsSurviveGoroutineChurn(t *testing.T) {
	needAMX(t)
	r := rng(5)
	w := RandomWeight(tensor.Q8_0, 256, 64, 1, r)
	if err := (&BufferType{Group: 32}).Import(w); err != nil {
		t.Fatal(err)
	}
	op := RandomMulMat(w, 48, r)
	cfg := TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 32}
	emu := newTestBackend(t, Options{Config: cfg, Threshold: 1, Emulate: true})
	runOp(t, emu, 0, op)
	want := append([]float32(nil), op.Dst.F32...)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = make([]byte, 1<<16)
				runtime.GC()
			}
		}
	}()
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pool.New(1)
			defer p.Close()
			b, err := NewBackend(p, Options{Config: cfg, Threshold: 1})
			if err != nil {
				errs <- err
				return
			}
			o := *op
			dst := *op.Dst
			dst.F32 = make([]float32, len(want))
			o.Dst = &dst
			for it := 0; it < 100; it++ {
				if _, err := b.Compute(&o); err != nil {
					errs <- err
					return
				}
				for i := range want {
					if dst.F32[i] != want[i] {
						errs <- fmt.Errorf("iteration %d, element %d: %v, want %v", it, i, dst.F32[i], want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
