// Package pool is the persistent worker pool every CPU-side kernel runs on: one goroutine per worker, started once,
// and work split into chunks that workers claim with an atomic counter, so no goroutine is started per op.
package pool

import (
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// spinFor is how long an idle worker keeps polling for the next job before it parks. A forward pass runs ops back
// to back, so a worker that spins sees the next op within nanoseconds; waking a parked one costs the caller a
// futex call per worker, tens of microseconds in all, which on a decode step is more than many ops take.
const spinFor = 200 * time.Microsecond

// pauseSpin makes the polling loops execute PAUSE between polls (see pause); $TILELAB_POOL_PAUSE=0 turns it off, to
// measure what it does. A poll sees a new job up to one PAUSE later: tens of nanoseconds.
var pauseSpin = os.Getenv("TILELAB_POOL_PAUSE") != "0"

// Pool runs chunked work on a fixed set of workers. Run may be called from one goroutine at a time.
type Pool struct {
	n     int
	start []chan struct{}
	state []atomic.Int32 // per worker: awake (polling or working) or parked (waiting on start)
	// spin: workers poll between jobs, only while each can have its own OS thread (GOMAXPROCS ≥ n). Run checks
	// it again every time: Go lowers GOMAXPROCS when the process's CPU quota or affinity shrinks, and workers that
	// keep spinning on fewer CPUs than they are leave the one holding a chunk waiting for a time slice at every op.
	spin atomic.Bool

	// The job in flight, set by Run before it publishes a new generation.
	chunks   int64
	job      Job
	closed   atomic.Bool
	sections uint64 // Run calls that handed work to other workers; only Run's goroutine touches it
	parks    atomic.Uint64

	// The three counters every worker touches sit on cache lines of their own: idle workers poll gen, and
	// sharing its line with next or pending would make each claim invalidate every poller's copy.
	_       [64]byte
	gen     atomic.Uint64
	_       [56]byte
	next    atomic.Int64
	_       [56]byte
	pending atomic.Int32 // workers that have not yet finished the current job
	_       [60]byte
}

const (
	awake  = 0
	parked = 1
)

// New starts a pool of n workers (n <= 0: DefaultThreads). The caller's goroutine counts as worker 0.
func New(n int) *Pool {
	if n <= 0 {
		n = DefaultThreads()
	}
	p := &Pool{n: n, start: make([]chan struct{}, n), state: make([]atomic.Int32, n)}
	p.spin.Store(n <= runtime.GOMAXPROCS(0))
	for w := 1; w < n; w++ {
		p.start[w] = make(chan struct{}, 1)
		go p.worker(w)
	}
	return p
}

// DefaultThreads is the worker count to use when none is asked for: GOMAXPROCS, which the Go runtime sets from
// the CPUs the process may use (a cgroup CPU quota included) rather than those the machine has. A pool of one
// worker per machine CPU under a quota of fewer spins workers that cannot all run, and every op waits for the
// throttled ones.
func DefaultThreads() int { return runtime.GOMAXPROCS(0) }

// Threads is the number of workers, the caller included.
func (p *Pool) Threads() int { return p.n }

func (p *Pool) worker(w int) {
	var seen uint64 // New published no generation yet; starting from 0 cannot miss the first job
	for {
		g, ok := p.await(w, seen)
		if !ok {
			return
		}
		seen = g
		p.claim(w)
		p.pending.Add(-1)
	}
}

// await returns the next generation after seen: by polling for a while, then parked on the worker's channel.
func (p *Pool) await(w int, seen uint64) (uint64, bool) {
	// Polling is a plain loop on one atomic: runtime.Gosched here would make every idle worker queue on the
	// scheduler's lock. The Go runtime preempts the loop if the GC needs it.
	deadline := time.Now().Add(spinFor)
	for i := 0; p.spin.Load(); i++ {
		if g := p.gen.Load(); g != seen {
			return g, true
		}
		if pauseSpin {
			pause()
		}
		if i%256 == 255 && (p.closed.Load() || time.Now().After(deadline)) {
			break
		}
	}
	p.state[w].Store(parked)
	p.parks.Add(1)
	// A job published between the last poll and the store above would find us still awake and not signal:
	// look once more before sleeping.
	if g := p.gen.Load(); g != seen {
		if p.state[w].CompareAndSwap(parked, awake) {
			return g, true
		}
		// Run already claimed our wake-up; take its signal so the channel stays empty.
	}
	if _, ok := <-p.start[w]; !ok {
		return 0, false
	}
	return p.gen.Load(), true
}

func (p *Pool) claim(w int) {
	for {
		c := p.next.Add(1) - 1
		if c >= p.chunks {
			return
		}
		p.job.Chunk(int(c), w)
	}
}

// Job is the work of one parallel section: Chunk runs once for every chunk, on whichever worker claims it, many at
// once. The hot paths hand RunJob a pointer to a job struct they keep and reuse, so a parallel section allocates
// nothing; a closure that captures its variables is allocated anew on every call, which is what Run costs.
type Job interface {
	Chunk(chunk, worker int)
}

// Func is a plain function as a Job, for callers off the hot path.
type Func func(chunk, worker int)

// Chunk calls f.
func (f Func) Chunk(chunk, worker int) { f(chunk, worker) }

// Run calls fn(chunk, worker) for every chunk in [0, chunks), spread over the workers, and returns when all are
// done. worker is in [0, Threads()), so fn can index per-worker scratch space. It is RunJob for code off the hot
// path: fn is usually a closure, allocated at every call.
func (p *Pool) Run(chunks int, fn func(chunk, worker int)) { p.RunJob(chunks, Func(fn)) }

// RunJob calls job.Chunk(chunk, worker) for every chunk in [0, chunks), spread over the workers, and returns when
// all are done. worker is in [0, Threads()), so a job can index per-worker scratch space. The pool holds job only
// until RunJob returns.
func (p *Pool) RunJob(chunks int, job Job) {
	if chunks <= 0 {
		return
	}
	if chunks == 1 || p.n == 1 {
		for c := 0; c < chunks; c++ {
			job.Chunk(c, 0)
		}
		return
	}
	spin := p.n <= runtime.GOMAXPROCS(0)
	if spin != p.spin.Load() {
		p.spin.Store(spin)
	}
	p.job, p.chunks = job, int64(chunks)
	p.sections++
	p.next.Store(0)
	p.pending.Store(int32(p.n - 1))
	p.gen.Add(1) // publishes the job to polling workers
	for w := 1; w < p.n; w++ {
		if p.state[w].CompareAndSwap(parked, awake) {
			p.start[w] <- struct{}{}
		}
	}
	p.claim(0)
	for i := 0; p.pending.Load() != 0; i++ {
		if !spin || i%256 == 255 {
			runtime.Gosched()
		} else if pauseSpin {
			pause()
		}
	}
	p.job = nil
}

// Sections counts the Run calls so far that handed chunks to other workers: each is a barrier the caller waits at,
// so fewer per decode step is the point of fusing ops. It must be read from the goroutine that calls Run.
func (p *Pool) Sections() uint64 { return p.sections }

// Parks counts the times a worker went to sleep on its channel, for want of a job within spinFor or because the
// pool does not spin: each costs the next Run a wake-up (a futex call) for that worker, tens of microseconds in
// all, so a decode step that parks is paying for it on every op.
func (p *Pool) Parks() uint64 { return p.parks.Load() }

// Spinning reports whether idle workers poll for the next job (the last Run, or New, found a CPU of GOMAXPROCS for
// each worker) rather than sleep until Run wakes them.
func (p *Pool) Spinning() bool { return p.spin.Load() }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	if p.closed.Swap(true) {
		return
	}
	for w := 1; w < p.n; w++ {
		close(p.start[w])
	}
}
