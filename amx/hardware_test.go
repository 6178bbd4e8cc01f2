package amx

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"

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
					hw := newTestBackend(t, Options{Config: cfg, Threshold: 1})
					emu := newTestBackend(t, Options{Config: cfg, Threshold: 1, Emulate: true})
					hw.eng.spread, emu.eng.spread = 0, 0
					runOp(t, hw, 0, op)
					got := append([]float32(nil), op.Dst.F32...)
					runOp(t, emu, 0, op)
					want := op.Dst.F32
					if typ != tensor.BF16 {
						for i := range want {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("element %d: hardware %v, emulator %v", i, got[i], want[i])
							}
						}
						return
					}
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

// TestTileKernelsSurviveGoroutineChurn runs the hardware kernels from many goroutines while the garbage collector
// runs, so tile state must never leak across goroutine switches.
func TestTileKernelsSurviveGoroutineChurn(t *testing.T) {
	needAMX(t)
	r := rng(5)
	w := RandomWeight(tensor.Q8_0, 256, 64, 1, r)
	if err := NewBufferType().Import(w); err != nil {
		t.Fatal(err)
	}
	op := RandomMulMat(w, 32, r)
	emu := newTestBackend(t, Options{Threshold: 1, Emulate: true})
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
			ws := &workspace{}
			eng := newEngine(testPool, DefaultConfig, false, true)
			for it := 0; it < 50; it++ {
				// Each goroutine runs blocks directly on its own workspace: no pool, maximum switching.
				p, _ := eng.plan(DefaultConfig)
				pal := palette(p, 16, 32)
				pk := w.Extra.(*packedInt8)
				var a actInt8
				a.reset(32, pk.Kp, pk.Group)
				for m := 0; m < 32; m++ {
					a.quantizeRow(m, op.Src[1].F32[m*256:(m+1)*256], false)
				}
				for n0 := 0; n0 < 64; n0 += 32 {
					ws.out(1024)
					clear(ws.cbuf)
					j := tileJob{a: a.Q, lda: pk.Kp, aTile: 16 * pk.Kp, b: pk.Q, bOff: pk.qIndex(0, n0, 0), bPanel: 16 * pk.Kp,
						ws: pk.WS, wsOff: pk.sIndex(0, n0, 0), wsPanel: pk.Groups * 16, xs: a.XS, xsGroup: 32,
						c: ws.cbuf[:], ldc: 32, groups: pk.Groups, steps: 1, kstep: 32, aStep: 32, rows: 16, mBlocks: 1, nBlocks: 1}
					if err := eng.runTile(ws, &pal, p, &j, true); err != nil {
						errs <- err
						return
					}
					for mm := 0; mm < 32; mm++ {
						for nn := 0; nn < 32; nn++ {
							if ws.cbuf[mm*32+nn] != want[mm*64+n0+nn] {
								errs <- fmt.Errorf("row %d col %d: %v, want %v", mm, n0+nn, ws.cbuf[mm*32+nn], want[mm*64+n0+nn])
								return
							}
						}
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
