package pool

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Every chunk of every job must run exactly once, whether the workers are polling (back-to-back jobs) or parked
// (pauses longer than spinFor between jobs), and with more workers than OS threads.
func TestRunDoesEveryChunkOnceWhetherWorkersPollOrPark(t *testing.T) {
	for _, n := range []int{1, 2, 3, runtime.GOMAXPROCS(0) + 2} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			p := New(n)
			defer p.Close()
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			for job := 0; job < 300; job++ {
				chunks := 1 + rng.IntN(50)
				counts := make([]atomic.Int32, chunks)
				var badWorker atomic.Bool
				p.Run(chunks, func(c, w int) {
					counts[c].Add(1)
					if w < 0 || w >= p.Threads() {
						badWorker.Store(true)
					}
				})
				for c := range counts {
					if got := counts[c].Load(); got != 1 {
						t.Fatalf("job %d: chunk %d of %d ran %d times", job, c, chunks, got)
					}
				}
				if badWorker.Load() {
					t.Fatalf("job %d: a worker index outside [0,%d)", job, p.Threads())
				}
				switch rng.IntN(10) {
				case 0:
					time.Sleep(spinFor + 100*time.Microsecond) // let the workers park
				case 1:
					time.Sleep(time.Duration(rng.IntN(int(spinFor)))) // wake them near the edge
				}
			}
		})
	}
}

func TestCloseStopsPollingAndParkedWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	p := New(4)
	p.Run(8, func(int, int) {})
	time.Sleep(spinFor + time.Millisecond) // some park, the rest are about to
	p.Close()
	p.Close() // a second Close does nothing
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines after Close, %d before New", g, before)
	}
}

func TestSectionsCountsOnlyRunsThatWakeWorkers(t *testing.T) {
	p := New(3)
	defer p.Close()
	p.Run(1, func(int, int) {})  // one chunk: the caller runs it alone
	p.Run(0, func(int, int) {})  // nothing to do
	p.Run(5, func(int, int) {})  // a parallel section
	p.Run(12, func(int, int) {}) // another
	if got := p.Sections(); got != 2 {
		t.Fatalf("Sections() = %d after two parallel runs, want 2", got)
	}
}

func TestParksCountsWorkersThatSleep(t *testing.T) {
	p := New(3)
	defer p.Close()
	p.Run(6, func(int, int) {})
	// Idle past spinFor, every worker parks (at once where the pool does not spin).
	deadline := time.Now().Add(5 * time.Second)
	for p.Parks() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := p.Parks(); got < 2 {
		t.Fatalf("Parks() = %d after the workers idled, want at least 2", got)
	}
}
