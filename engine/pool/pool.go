// Package pool is the persistent worker pool every CPU-side kernel runs on: one goroutine per worker, started once,
// and work split into chunks that workers claim with an atomic counter, so no goroutine is started per op.
package pool

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool runs chunked work on a fixed set of workers. Run may be called from one goroutine at a time.
type Pool struct {
	n     int
	start []chan struct{}
	wg    sync.WaitGroup

	// The job in flight, set by Run before waking the workers.
	next   atomic.Int64
	chunks int64
	fn     func(chunk, worker int)
	closed bool
}

// New starts a pool of n workers (n <= 0 means one per CPU). The caller's goroutine counts as worker 0.
func New(n int) *Pool {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	p := &Pool{n: n, start: make([]chan struct{}, n)}
	for w := 1; w < n; w++ {
		p.start[w] = make(chan struct{}, 1)
		go p.worker(w)
	}
	return p
}

// Threads is the number of workers, the caller included.
func (p *Pool) Threads() int { return p.n }

func (p *Pool) worker(w int) {
	for range p.start[w] {
		p.claim(w)
		p.wg.Done()
	}
}

func (p *Pool) claim(w int) {
	for {
		c := p.next.Add(1) - 1
		if c >= p.chunks {
			return
		}
		p.fn(int(c), w)
	}
}

// Run calls fn(chunk, worker) for every chunk in [0, chunks), spread over the workers, and returns when all are
// done. worker is in [0, Threads()), so fn can index per-worker scratch space.
func (p *Pool) Run(chunks int, fn func(chunk, worker int)) {
	if chunks <= 0 {
		return
	}
	if chunks == 1 || p.n == 1 {
		for c := 0; c < chunks; c++ {
			fn(c, 0)
		}
		return
	}
	p.fn, p.chunks = fn, int64(chunks)
	p.next.Store(0)
	helpers := min(p.n, chunks) - 1
	p.wg.Add(helpers)
	for w := 1; w <= helpers; w++ {
		p.start[w] <- struct{}{}
	}
	p.claim(0)
	p.wg.Wait()
	p.fn = nil
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	if p.closed {
		return
	}
	p.closed = true
	for w := 1; w < p.n; w++ {
		close(p.start[w])
	}
}
