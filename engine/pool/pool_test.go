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

// countJob counts its chunks; a pointer to it is a Job that costs RunJob no allocation.
type countJob struct{ counts []atomic.Int32 }

func (j *countJob) Chunk(c, _ int) { j.counts[c].Add(1) }

// A job kept by the caller and handed over by pointer is a whole parallel section without an allocation, and it
// still runs every chunk once; the same work as a capturing closure through Run allocates, which is why the hot
// paths use RunJob.
func TestRunJobAllocatesNothingAndRunsEveryChunkOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			p := New(n)
			defer p.Close()
			j := &countJob{counts: make([]atomic.Int32, 37)}
			const runs = 50
			if a := testing.AllocsPerRun(runs, func() { p.RunJob(len(j.counts), j) }); a != 0 {
				t.Errorf("RunJob allocated %v times per call", a)
			}
			for c := range j.counts {
				if got := j.counts[c].Load(); got != runs+1 { // AllocsPerRun makes one warm-up call
					t.Fatalf("chunk %d ran %d times in %d calls", c, got, runs+1)
				}
			}
			var total atomic.Int32
			if a := testing.AllocsPerRun(runs, func() { p.Run(5, func(c, _ int) { total.Add(int32(c)) }) }); a == 0 && n > 1 {
				t.Error("Run with a capturing closure allocated nothing; the test no longer shows what RunJob saves")
			}
		})
	}
}

// Go lowers GOMAXPROCS when the process's CPU quota or affinity shrinks: the pool must stop spinning then (workers
// polling on fewer CPUs than they are leave the one holding a chunk waiting for a time slice) and spin again when
// the CPUs come back, doing every chunk once throughout.
func TestThePoolStopsSpinningWhenGOMAXPROCSDropsBelowItsWorkers(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	if procs < 2 {
		t.Skip("needs GOMAXPROCS of at least 2 to lower it")
	}
	defer runtime.GOMAXPROCS(procs)
	p := New(procs)
	defer p.Close()
	run := func() {
		var done atomic.Int32
		p.Run(64, func(int, int) { done.Add(1) })
		if done.Load() != 64 {
			t.Fatalf("%d of 64 chunks ran", done.Load())
		}
	}
	run()
	if !p.Spinning() {
		t.Fatalf("%d workers on GOMAXPROCS %d do not spin", procs, procs)
	}
	runtime.GOMAXPROCS(procs - 1)
	run()
	if p.Spinning() {
		t.Fatalf("%d workers still spin on GOMAXPROCS %d", procs, procs-1)
	}
	run()
	runtime.GOMAXPROCS(procs)
	run()
	if !p.Spinning() {
		t.Fatal("the pool did not spin again once GOMAXPROCS came back")
	}
}
