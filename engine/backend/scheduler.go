package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"tilelab/engine/graph"
	"tilelab/engine/profile"
	"tilelab/engine/tensor"
)

// Assignment records which backend ran an op, the kernel it chose, and why that backend was picked. The copies
// the scheduler inserts are assignments too: a COPY op (Src[0] the tensor holding the value, Dst where it goes)
// with the backend that needed it (or, for the copies back at the end of a graph, the buffer type receiving it),
// the copy kernel, and why the tensor had to move.
type Assignment struct {
	Op      *graph.Op
	Backend string
	Kernel  string
	Reason  string // why this backend: its SupportsOp answer, its copies, and the refusals of those ahead of it
}

// Scheduler gives each op of a graph to a backend that supports it for the buffers its inputs live in, and moves
// tensors between buffer types where the backend it picks cannot read them (see BufferReader).
//
// The choice: among the backends whose SupportsOp says yes for the op as they would see it, one that reads every
// input where its current value lives is preferred (the first in registry order); failing that, the one that
// moves the fewest bytes (registry order breaks ties). Views resolve to their source throughout: a view's source
// is what is copied, and the backend is handed a view of the copy.
//
// Copies go into scratch tensors the scheduler owns, one per tensor and buffer type, kept across runs: running a
// graph of the same shape again reuses them without allocating. An op whose backend cannot write its destination
// writes a scratch tensor in a buffer it can; the value is copied back when an op that cannot read it there needs
// it, and at the end of Run for the graph's outputs (tensors not read after they were last written) and for tensors
// written through views (KV caches, which outlive the graph). An intermediate computed on a device and consumed
// there stays there: its own tensor is stale after Run unless FlushAll is set. At the start of Run every tensor's
// own storage is taken to be current (the caller may have written inputs there). Release frees the scratch
// tensors.
//
// Copies are made whole: a view's source moves, so a KV cache read on a device is copied in full each Run unless
// the cache itself lives in a buffer that device reads.
type Scheduler struct {
	Registry *Registry
	Profile  *profile.Recorder // nil: no per-op records
	// Trace, when true, keeps the Assignments of the last Run (the workbench's `ops` command reads them).
	Trace       bool
	Assignments []Assignment
	// FlushAll copies every value an op computed into a scratch copy back into its own tensor at the end of Run,
	// intermediates too (to inspect activations); by default only outputs and tensors written through views are.
	FlushAll bool

	st state
}

// mirrorKey names the copy of a source tensor in one buffer type.
type mirrorKey struct {
	src *graph.Tensor
	buf string
}

// slot is a scratch tensor of the scheduler: the copy of one source tensor in one buffer type.
type slot struct {
	t     *graph.Tensor // owns its storage in t.BufferType
	alloc Allocator     // the storage's allocator; nil for Go memory
	valid bool          // holds the source's current value in this run
}

// move is a copy the op about to run needs first: from holds the value, to receives it; both own their storage.
type move struct {
	src      *graph.Tensor // the graph's tensor whose value moves
	from, to *graph.Tensor
}

// refusal is why a backend was not given the op: planned out (no way to get it the tensors) or refused by its
// SupportsOp when tried.
type refusal struct {
	backend, why string
	prio         int
	tried        bool
}

// candidate is a backend that could compute the op once copies are made, with what those copies would move.
type candidate struct {
	b      Backend
	prio   int
	copies int
	bytes  int64
	first  move // the first copy, for reasons (to is nil: only its buffer, toBuf, is known yet)
	toBuf  string
}

// state is the scheduler's bookkeeping: scratch kept across runs, and what holds which value in this run.
type state struct {
	flags   map[*graph.Tensor]uint8 // what happened to sources this run; absent: nothing (their storage is current)
	order   []*graph.Tensor         // sources in the order they first went stale
	mirrors map[mirrorKey]int       // index in slots of each copy made this run
	slots   []*slot                 // the first nslots are this run's, in the order they were needed
	nslots  int
	views   []*graph.Tensor // views over copies handed to backends, reused in order
	nviews  int
	copyOps []*graph.Op // the COPY ops of Assignments, reused in order
	ncopies int

	bound    graph.Op // the op as the chosen backend sees it, when some input or the destination moved
	boundSrc []*graph.Tensor
	probe    graph.Tensor // the header of a scratch destination not made yet (lazy), for SupportsOp
	lazy     mirrorKey
	moves    []move
	refusals []refusal
	cands    []candidate
	names    []string // bufferNames, for this run
	found    []*slot  // what copies returned last
}

// Run executes the graph's ops in order. It stops at the first error, and between ops when ctx is done; either
// way, values computed into scratch tensors are first copied back to their own buffers.
func (s *Scheduler) Run(ctx context.Context, g *graph.Graph) (err error) {
	if s.Trace {
		s.Assignments = s.Assignments[:0]
	}
	s.reset()
	defer func() {
		if ferr := s.flush(); ferr != nil {
			err = errors.Join(err, ferr)
		}
	}()
	for _, op := range g.Ops {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, bound, reason, err := s.pick(op)
		if err != nil {
			return err
		}
		for _, m := range s.st.moves {
			if err := s.copy(m, c.b, op); err != nil {
				return fmt.Errorf("%s %s on %s: %w", op.Kind, op.Name, c.b.Name(), err)
			}
		}
		var t0 time.Time
		if s.Profile.Enabled() {
			t0 = time.Now()
		}
		kernel, err := c.b.Compute(bound)
		if err != nil {
			return fmt.Errorf("%s %s on %s: %w", op.Kind, op.Name, c.b.Name(), err)
		}
		if s.Profile.Enabled() {
			s.Profile.Add(Describe(bound, c.b.Name(), kernel, time.Since(t0)))
		}
		if s.Trace {
			s.Assignments = append(s.Assignments, Assignment{Op: op, Backend: c.b.Name(), Kernel: kernel, Reason: reason})
		}
		s.read(op)
		if op.Dst != nil {
			s.wrote(op.Dst.Source(), bound.Dst.Source(), op.Dst.ViewSrc != nil)
		}
	}
	return nil
}

// Release frees the scratch tensors (device memory included). The scheduler stays usable: a later Run makes them
// again.
func (s *Scheduler) Release() {
	for _, sl := range s.st.slots {
		if sl.alloc != nil {
			sl.alloc.Free(sl.t)
		}
	}
	s.st.slots, s.st.nslots = nil, 0
	clear(s.st.mirrors)
}

func (s *Scheduler) reset() {
	st := &s.st
	if st.flags == nil {
		st.flags = make(map[*graph.Tensor]uint8)
		st.mirrors = make(map[mirrorKey]int)
	}
	clear(st.flags)
	clear(st.mirrors)
	st.names = s.bufferNames(st.names)
	st.order = st.order[:0]
	st.nslots, st.nviews, st.ncopies = 0, 0, 0
}

// pick chooses the backend for op and binds the op to the tensors it will see, leaving in st.moves the copies to
// make first.
func (s *Scheduler) pick(op *graph.Op) (candidate, *graph.Op, string, error) {
	st := &s.st
	st.refusals, st.cands = st.refusals[:0], st.cands[:0]
	for i, b := range s.Registry.Backends() {
		c, why := s.plan(b, op)
		if why != "" {
			st.refusals = append(st.refusals, refusal{backend: b.Name(), why: why, prio: i})
			continue
		}
		c.prio = i
		st.cands = append(st.cands, c)
	}
	slices.SortStableFunc(st.cands, func(a, b candidate) int {
		switch {
		case a.bytes != b.bytes:
			return cmpInt64(a.bytes, b.bytes)
		case a.copies != b.copies:
			return a.copies - b.copies
		}
		return 0
	})
	for i, c := range st.cands {
		bound, why := s.bind(c.b, op)
		if why == "" {
			var ok bool
			if ok, why = c.b.SupportsOp(bound); ok {
				if err := s.materialize(bound); err != nil {
					why = fmt.Sprintf("no scratch destination can be made for %s in %s: %v", op.Dst.Name, st.lazy.buf, err)
				} else {
					var reason string
					if s.Trace {
						reason = s.reason(c, why, st.cands[i+1:])
					}
					return c, bound, reason, nil
				}
			}
		}
		st.refusals = append(st.refusals, refusal{backend: c.b.Name(), why: why, prio: c.prio, tried: true})
	}
	slices.SortStableFunc(st.refusals, func(a, b refusal) int { return a.prio - b.prio })
	parts := make([]string, len(st.refusals))
	for i, r := range st.refusals {
		parts[i] = r.backend + ": " + r.why
	}
	return candidate{}, nil, "", fmt.Errorf("no backend can compute %s %s: %s", op.Kind, op.Name, strings.Join(parts, "; "))
}

func cmpInt64(a, b int64) int {
	if a < b {
		return -1
	}
	return 1
}

// reason says why c was chosen: its own SupportsOp answer, the copies it needs, the backends ahead of it that were
// passed over because they would have moved more, and the refusals of those ahead of it or tried before it.
func (s *Scheduler) reason(c candidate, why string, untried []candidate) string {
	var sb strings.Builder
	sb.WriteString(why)
	for i, m := range s.st.moves {
		if i == 0 {
			fmt.Fprintf(&sb, "; %s cannot read ", c.b.Name())
		} else {
			sb.WriteString(", nor ")
		}
		if m.to == m.src {
			fmt.Fprintf(&sb, "%s in %s, so it is copied back into its own buffer, %s", m.src.Name, m.from.Buffer(), m.to.Buffer())
		} else {
			fmt.Fprintf(&sb, "%s in %s, so it is copied into %s", m.src.Name, m.from.Buffer(), m.to.Buffer())
		}
	}
	for _, o := range untried {
		if o.prio < c.prio {
			fmt.Fprintf(&sb, "; chosen over %s, which would copy %s from %s into %s", o.b.Name(), o.first.src.Name, o.first.from.Buffer(), o.toBuf)
			if o.copies > 1 {
				fmt.Fprintf(&sb, " and %d more", o.copies-1)
			}
		}
	}
	n := 0
	for _, r := range s.st.refusals {
		if r.prio > c.prio && !r.tried {
			continue // behind it, and never a contender
		}
		if n == 0 {
			sb.WriteString(" (")
		} else {
			sb.WriteString("; ")
		}
		n++
		sb.WriteString(r.backend + ": " + r.why)
	}
	if n > 0 {
		sb.WriteString(")")
	}
	return sb.String()
}

// reads reports whether b reads buffer type bt; a backend that does not say reads every one.
func reads(b Backend, bt string) bool {
	r, ok := b.(BufferReader)
	return !ok || r.Reads(bt)
}

// plan works out, without allocating or copying, what b would have to copy to compute op: the inputs whose value
// is in no buffer it reads, and a destination view whose source's value must be there before it writes part of
// it. A non-empty string says why b cannot be given the op at all.
func (s *Scheduler) plan(b Backend, op *graph.Op) (candidate, string) {
	c := candidate{b: b}
	note := func(t *graph.Tensor, value bool) string {
		src := t.Source()
		if _, ok := s.readable(b, src); ok {
			return ""
		}
		if reads(b, src.Buffer()) && !value {
			return "" // writes its own storage
		}
		toBuf, why := s.destination(b, t, src, value)
		if why != "" {
			return why
		}
		if value {
			if c.copies == 0 {
				c.first, c.toBuf = move{src: src, from: s.current(src)}, toBuf
			}
			c.copies++
			c.bytes += src.Bytes()
		}
		return ""
	}
	for _, t := range op.Src {
		if t == nil {
			continue
		}
		if why := note(t, true); why != "" {
			return c, why
		}
	}
	if op.Dst != nil {
		if why := note(op.Dst, op.Dst.ViewSrc != nil); why != "" {
			return c, why
		}
	}
	return c, ""
}

// readable finds a tensor holding src's current value in a buffer b reads: src itself, or a valid copy.
func (s *Scheduler) readable(b Backend, src *graph.Tensor) (*graph.Tensor, bool) {
	if !s.stale(src) {
		if reads(b, src.Buffer()) {
			return src, true
		}
		if len(s.st.mirrors) == 0 {
			return nil, false
		}
	}
	for _, sl := range s.copies(src) {
		if sl.valid && reads(b, sl.t.BufferType) {
			return sl.t, true
		}
	}
	return nil, false
}

// copies lists src's scratch copies made this run (at most one per buffer type). The list is reused by the next
// call: use it before calling copies again.
func (s *Scheduler) copies(src *graph.Tensor) []*slot {
	st := &s.st
	if len(st.mirrors) == 0 {
		return nil
	}
	out := st.found[:0]
	for _, name := range st.names {
		if i, ok := st.mirrors[mirrorKey{src, name}]; ok {
			out = append(out, st.slots[i])
		}
	}
	st.found = out
	return out
}

// bufferNames lists the buffer types copies can be in: the registered ones, and CPU memory even when no CPU
// buffer type is registered.
func (s *Scheduler) bufferNames(names []string) []string {
	names = names[:0]
	cpu := false
	for _, bt := range s.Registry.BufferTypes() {
		names = append(names, bt.Name())
		cpu = cpu || bt.Name() == "CPU"
	}
	if !cpu {
		names = append(names, "CPU")
	}
	return names
}

// current is the tensor holding src's current value: src itself unless an op computed it into a copy.
func (s *Scheduler) current(src *graph.Tensor) *graph.Tensor {
	if !s.stale(src) {
		return src
	}
	for _, sl := range s.copies(src) {
		if sl.valid {
			return sl.t
		}
	}
	return src
}

// destination chooses the buffer type b gets tensor t (of source src) in when no buffer it reads holds the
// value: src's own when b reads it, else one where src has a copy already, else b's scratch buffer type. With
// value set it also checks that a copier can move the value there.
func (s *Scheduler) destination(b Backend, t, src *graph.Tensor, value bool) (string, string) {
	if l := src.StorageLayout(); l != tensor.Plain {
		return "", fmt.Sprintf("%s cannot read %s in %s, and a tensor in layout %s is never copied out of its buffer", b.Name(), t.Name, src.Buffer(), l)
	}
	if t != src {
		if _, _, ok := window(t, src); !ok {
			return "", fmt.Sprintf("%s cannot read view %s in %s, and where it lies in %s is unknown, so it cannot be copied", b.Name(), t.Name, src.Buffer(), src.Name)
		}
	}
	to := ""
	switch {
	case reads(b, src.Buffer()):
		to = src.Buffer()
	default:
		for _, sl := range s.copies(src) {
			if reads(b, sl.t.BufferType) {
				to = sl.t.BufferType
				break
			}
		}
		if to == "" {
			to = s.scratchBuffer(b)
		}
	}
	if to == "" {
		return "", fmt.Sprintf("%s cannot read %s in %s, and reads no buffer type the scheduler can copy it into", b.Name(), t.Name, src.Buffer())
	}
	if value {
		from := s.current(src).Buffer()
		if c, host := s.copier(b, from, to); c == nil && !host {
			return "", fmt.Sprintf("%s cannot read %s in %s, and no copier moves tensors from %s to %s", b.Name(), t.Name, from, from, to)
		}
	}
	return to, ""
}

// scratchBuffer is the buffer type scratch copies for b go into: CPU memory when b reads it, else the first
// registered buffer type b reads that can hold a scratch tensor (host memory, or one with an Allocator).
func (s *Scheduler) scratchBuffer(b Backend) string {
	if reads(b, "CPU") {
		return "CPU"
	}
	for _, bt := range s.Registry.BufferTypes() {
		if !reads(b, bt.Name()) {
			continue
		}
		if _, ok := bt.(Allocator); ok || bt.IsHost() {
			return bt.Name()
		}
	}
	return ""
}

// isHost reports whether the CPU can address buffer type name's memory; an unregistered CPU is host memory.
func (s *Scheduler) isHost(name string) bool {
	if bt := s.Registry.lookup(name); bt != nil {
		return bt.IsHost()
	}
	return name == "CPU"
}

// copier finds who copies from one buffer type to another: the backend (b may be nil), then the receiving and the
// sending buffer types; host is true when none does and both are host memory, so the scheduler copies itself.
func (s *Scheduler) copier(b Backend, from, to string) (Copier, bool) {
	if c := s.copierOf(b, from, to); c != nil {
		return c, false
	}
	return nil, s.isHost(from) && s.isHost(to)
}

func (s *Scheduler) copierOf(b Backend, from, to string) Copier {
	if c, ok := b.(Copier); ok && c.CanCopy(from, to) {
		return c
	}
	for _, name := range [2]string{to, from} {
		if bt := s.Registry.lookup(name); bt != nil {
			if c, ok := bt.(Copier); ok && c.CanCopy(from, to) {
				return c
			}
		}
	}
	return nil
}

// bind makes the op as b will see it: inputs replaced by the copies b reads (views by views of the copies), the
// destination by a scratch tensor when b cannot write it, and st.moves the copies to make before computing. It
// allocates scratch tensors the first time a graph needs them.
func (s *Scheduler) bind(b Backend, op *graph.Op) (*graph.Op, string) {
	st := &s.st
	st.moves = st.moves[:0]
	st.lazy = mirrorKey{}
	st.boundSrc = append(st.boundSrc[:0], op.Src...)
	changed := false
	for i, t := range op.Src {
		if t == nil {
			continue
		}
		u, why := s.place(b, t, true)
		if why != "" {
			return nil, why
		}
		changed = changed || u != t
		st.boundSrc[i] = u
	}
	dst := op.Dst
	if dst != nil {
		u, why := s.place(b, dst, dst.ViewSrc != nil)
		if why != "" {
			return nil, why
		}
		changed = changed || u != dst
		dst = u
	}
	if !changed {
		return op, ""
	}
	st.bound = *op
	st.bound.Src, st.bound.Dst = st.boundSrc, dst
	return &st.bound, ""
}

// queued reports whether a copy into holder is already among the op's moves (an op that reads a tensor twice,
// or two views of it).
func (s *Scheduler) queued(holder *graph.Tensor) bool {
	for _, m := range s.st.moves {
		if m.to == holder {
			return true
		}
	}
	return false
}

// materialize makes the scratch destination bind left as a header (st.lazy), now that the backend accepted.
func (s *Scheduler) materialize(bound *graph.Op) error {
	if s.st.lazy.src == nil {
		return nil
	}
	m, err := s.mirror(s.st.lazy.src, s.st.lazy.buf)
	if err != nil {
		return err
	}
	bound.Dst = m
	return nil
}

// place finds the tensor b reads (value) or writes for t, adding to st.moves the copy that must come first.
func (s *Scheduler) place(b Backend, t *graph.Tensor, value bool) (*graph.Tensor, string) {
	src := t.Source()
	holder, ok := s.readable(b, src)
	if !ok && !value && reads(b, src.Buffer()) {
		holder, ok = src, true
	}
	if !ok {
		to, why := s.destination(b, t, src, value)
		if why != "" {
			return nil, why
		}
		_, made := s.st.mirrors[mirrorKey{src, to}]
		switch {
		case to == src.Buffer():
			holder = src
		case !value && !made:
			// A destination made only for this backend: SupportsOp sees its header, and the scratch tensor is
			// made once the backend accepts (pick calls materialize), so a refusal leaves no allocation behind.
			s.st.probe = graph.Tensor{Name: src.Name, Type: src.Type, Ne: src.Ne, Layout: tensor.Plain, BufferType: to}
			s.st.lazy = mirrorKey{src, to}
			return &s.st.probe, ""
		default:
			var err error
			if holder, err = s.mirror(src, to); err != nil {
				return nil, fmt.Sprintf("%s cannot read %s in %s, and no copy can be made in %s: %v", b.Name(), t.Name, src.Buffer(), to, err)
			}
		}
		if value && !s.queued(holder) {
			s.st.moves = append(s.st.moves, move{src: src, from: s.current(src), to: holder})
		}
	}
	if holder == src {
		return t, ""
	}
	if t == src {
		return holder, ""
	}
	return s.viewOf(t, src, holder), ""
}

// viewOf is view t (of source src) over holder, a copy of src.
func (s *Scheduler) viewOf(t, src, holder *graph.Tensor) *graph.Tensor {
	st := &s.st
	if st.nviews == len(st.views) {
		st.views = append(st.views, &graph.Tensor{})
	}
	v := st.views[st.nviews]
	st.nviews++
	off, n, _ := window(t, src) // destination checked it
	v.Name, v.Type, v.Ne, v.Layout, v.BufferType, v.ViewSrc = t.Name, t.Type, t.Ne, t.Layout, "", holder
	rebase(v, holder, off, n)
	return v
}

// mirror returns the scratch copy of src in buffer type buf, reusing the slot the same graph used last run.
func (s *Scheduler) mirror(src *graph.Tensor, buf string) (*graph.Tensor, error) {
	st := &s.st
	key := mirrorKey{src, buf}
	if i, ok := st.mirrors[key]; ok {
		return st.slots[i].t, nil
	}
	if st.nslots == len(st.slots) {
		st.slots = append(st.slots, &slot{})
	}
	sl := st.slots[st.nslots]
	if err := s.fit(sl, src, buf); err != nil {
		return nil, err
	}
	sl.valid = false
	st.mirrors[key] = st.nslots
	st.nslots++
	return sl.t, nil
}

// fit makes sl's tensor a scratch copy of src's type and shape in buf, keeping its storage when it fits.
func (s *Scheduler) fit(sl *slot, src *graph.Tensor, buf string) error {
	t := sl.t
	if t != nil && t.BufferType == buf && t.Type == src.Type {
		if t.Ne == src.Ne {
			t.Name = src.Name
			return nil
		}
		if sl.alloc == nil && hostFits(t, src) {
			t.Name, t.Ne = src.Name, src.Ne
			hostResize(t)
			return nil
		}
	}
	if sl.alloc != nil {
		sl.alloc.Free(t)
	}
	sl.t, sl.alloc = nil, nil
	t = &graph.Tensor{Name: src.Name, Type: src.Type, Ne: src.Ne, Layout: tensor.Plain, BufferType: buf}
	if bt := s.Registry.lookup(buf); bt != nil {
		if a, ok := bt.(Allocator); ok {
			if err := a.Alloc(t); err != nil {
				return err
			}
			sl.t, sl.alloc = t, a
			return nil
		}
	}
	if !s.isHost(buf) {
		return fmt.Errorf("buffer type %s is not host memory and has no allocator", buf)
	}
	hostAlloc(t)
	sl.t = t
	return nil
}

// hostFits reports whether t's Go memory can hold src's elements.
func hostFits(t, src *graph.Tensor) bool {
	switch t.Type {
	case tensor.F32:
		return cap(t.F32) >= src.Elems()
	case tensor.I32:
		return cap(t.I32) >= src.Elems()
	}
	return int64(cap(t.Data)) >= src.Bytes()
}

// hostResize sets t's slices to the length of its (new) shape.
func hostResize(t *graph.Tensor) {
	switch t.Type {
	case tensor.F32:
		t.F32 = t.F32[:t.Elems()]
	case tensor.I32:
		t.I32 = t.I32[:t.Elems()]
	default:
		t.Data = t.Data[:t.Bytes()]
	}
}

// copy makes one move for op on backend b (nil for the copies back at the end of a graph), records it, and
// marks where the value now is.
func (s *Scheduler) copy(m move, b Backend, op *graph.Op) error {
	from, to := m.from.Buffer(), m.to.Buffer()
	var t0 time.Time
	if s.Profile.Enabled() {
		t0 = time.Now()
	}
	c, host := s.copier(b, from, to)
	kernel := KernelHostCopy
	var err error
	switch {
	case c != nil:
		kernel, err = c.Copy(m.to, m.from)
	case host:
		err = hostCopy(m.to, m.from)
	default:
		err = fmt.Errorf("no copier moves tensors from %s to %s", from, to)
	}
	if err != nil {
		return fmt.Errorf("copying %s from %s into %s: %w", m.src.Name, from, to, err)
	}
	who := to
	if b != nil {
		who = b.Name()
	}
	if s.Profile.Enabled() || s.Trace {
		cop := s.copyOp(m, op)
		if s.Profile.Enabled() {
			rec := Describe(cop, who, kernel, time.Since(t0))
			rec.Buffers = from + "→" + to
			rec.Bytes = m.src.Bytes()
			s.Profile.Add(rec)
		}
		if s.Trace {
			s.Assignments = append(s.Assignments, Assignment{Op: cop, Backend: who, Kernel: kernel, Reason: copyReason(m, b, op)})
		}
	}
	s.valid(m.src, m.to)
	return nil
}

// copyReason says why a tensor moved.
func copyReason(m move, b Backend, op *graph.Op) string {
	from, to := m.from.Buffer(), m.to.Buffer()
	switch {
	case b == nil:
		return fmt.Sprintf("%s was last computed into %s; it is copied back into its own buffer, %s, at the end of the graph", m.src.Name, from, to)
	case m.to == m.src:
		return fmt.Sprintf("%s reads %s, not %s, for %s %s: %s is copied back into its own buffer", b.Name(), to, from, op.Kind, op.Name, m.src.Name)
	}
	return fmt.Sprintf("%s reads %s, not %s, for %s %s: %s is copied into a scratch tensor in %s", b.Name(), to, from, op.Kind, op.Name, m.src.Name, to)
}

// copyOp is the COPY op recorded for a move, from a pool reused across runs.
func (s *Scheduler) copyOp(m move, op *graph.Op) *graph.Op {
	st := &s.st
	if st.ncopies == len(st.copyOps) {
		st.copyOps = append(st.copyOps, &graph.Op{Kind: graph.Copy, Src: make([]*graph.Tensor, 1)})
	}
	c := st.copyOps[st.ncopies]
	st.ncopies++
	c.Name, c.Layer, c.Src[0], c.Dst = m.src.Name, -1, m.from, m.to
	if op != nil {
		c.Layer = op.Layer
	}
	return c
}

// Flags of a source tensor in a run.
const (
	fStale   uint8 = 1 << iota // its own storage does not hold its current value: a scratch copy does
	fRead                      // read by an op since it was last written
	fPartial                   // written through a view (a KV cache window): it outlives the graph
	fQueued                    // in st.order
)

func (s *Scheduler) stale(src *graph.Tensor) bool {
	return len(s.st.flags) > 0 && s.st.flags[src]&fStale != 0
}

// valid records that holder (src itself or a copy) now holds src's current value, as well as those that held it.
func (s *Scheduler) valid(src, holder *graph.Tensor) {
	if holder == src {
		s.st.flags[src] &^= fStale
		return
	}
	if sl := s.slotOf(src, holder); sl != nil {
		sl.valid = true
	}
}

// read records that op read its inputs, so that a value left in a scratch copy and read since it was written is
// known to be an intermediate.
func (s *Scheduler) read(op *graph.Op) {
	if len(s.st.flags) == 0 {
		return
	}
	for _, t := range op.Src {
		if t == nil {
			continue
		}
		src := t.Source()
		if f, ok := s.st.flags[src]; ok && f&fStale != 0 {
			s.st.flags[src] = f | fRead
		}
	}
}

// wrote records that an op wrote src's value into holder (through a view when partial): every other copy, and
// src itself if holder is not src, no longer holds it.
func (s *Scheduler) wrote(src, holder *graph.Tensor, partial bool) {
	st := &s.st
	if holder == src && len(st.mirrors) == 0 && !partial && len(st.flags) == 0 {
		return
	}
	for _, sl := range s.copies(src) {
		sl.valid = sl.t == holder
	}
	f := st.flags[src] &^ (fRead | fStale)
	if partial {
		f |= fPartial
	}
	if holder != src {
		f |= fStale
		if f&fQueued == 0 {
			f |= fQueued
			st.order = append(st.order, src)
		}
	}
	st.flags[src] = f
}

func (s *Scheduler) slotOf(src, holder *graph.Tensor) *slot {
	if i, ok := s.st.mirrors[mirrorKey{src, holder.BufferType}]; ok {
		return s.st.slots[i]
	}
	return nil
}

// flush copies values left in scratch copies back into their own tensors' buffers: the graph's outputs (never
// read after they were last written), tensors written through views (KV caches, which outlive the graph), and with
// FlushAll every one. An intermediate, written and then read within the graph, stays where it was computed.
func (s *Scheduler) flush() error {
	st := &s.st
	for _, src := range st.order {
		f := st.flags[src]
		if f&fStale == 0 || (f&fRead != 0 && f&fPartial == 0 && !s.FlushAll) {
			continue
		}
		if err := s.copy(move{src: src, from: s.current(src), to: src}, nil, nil); err != nil {
			return fmt.Errorf("at the end of the graph: %w", err)
		}
	}
	return nil
}

// Describe builds the profile record of one op execution: shapes, buffers, bytes and flops from the op itself.
func Describe(op *graph.Op, backendName, kernel string, d time.Duration) profile.Record {
	var shapes, bufs []string
	for _, t := range op.Src {
		if t == nil {
			continue
		}
		shapes = append(shapes, t.Type.String()+t.Shape())
		bufs = append(bufs, t.Buffer())
	}
	return profile.Record{
		Op: op.Kind.String(), Name: op.Name, Layer: op.Layer, Backend: backendName, Kernel: kernel,
		Shapes: strings.Join(shapes, " "), Buffers: strings.Join(bufs, ","), Bytes: Bytes(op), Flops: Flops(op), Time: d,
	}
}

// Flops counts the arithmetic of the matrix ops (2 per multiply-add); elementwise ops count one per element.
func Flops(op *graph.Op) int64 {
	switch op.Kind {
	case graph.MulMat:
		w, x := op.Src[0], op.Src[1]
		return 2 * int64(w.Ne[0]) * int64(w.Ne[1]) * int64(x.Rows())
	case graph.MulMatID:
		w, ids := op.Src[0], op.Src[2]
		return 2 * int64(w.Ne[0]) * int64(w.Ne[1]) * int64(ids.Elems())
	case graph.MulMats: // the fused ops: their products, plus one per output element for the elementwise tail
		x, n := op.Src[len(op.Src)-1], int64(0)
		for _, w := range op.Src[:len(op.Src)-1] {
			n += 2 * int64(w.Ne[0]) * int64(w.Ne[1]) * int64(x.Rows())
		}
		return n
	case graph.MulMatAdd, graph.MulMatSwiGLU:
		w, x, prods := op.Src[0], op.Src[1], int64(1)
		if op.Kind == graph.MulMatSwiGLU {
			x, prods = op.Src[2], 2
		}
		return prods*2*int64(w.Ne[0])*int64(w.Ne[1])*int64(x.Rows()) + int64(op.Dst.Elems())
	case graph.MulMatIDSwiGLU, graph.MulMatIDSum:
		w, ids, prods := op.Src[0], op.Src[2], int64(1)
		if op.Kind == graph.MulMatIDSwiGLU {
			ids, prods = op.Src[3], 2
		}
		return prods*2*int64(w.Ne[0])*int64(w.Ne[1])*int64(ids.Elems()) + int64(op.Dst.Elems())
	}
	if op.Dst != nil {
		return int64(op.Dst.Elems())
	}
	return 0
}

// Bytes estimates the memory an op touches: its inputs and output, except that GET_ROWS reads only the rows it
// fetches and MUL_MAT_ID only the experts its tokens chose (counted once each), not the whole table or stack.
func Bytes(op *graph.Op) int64 {
	var n int64
	if op.Dst != nil {
		n += op.Dst.Bytes()
	}
	for i, t := range op.Src {
		if t == nil {
			continue
		}
		switch {
		case op.Kind == graph.GetRows && i == 0:
			if len(op.Src) > 1 && op.Src[1] != nil {
				n += int64(t.Type.RowBytes(t.Ne[0])) * int64(op.Src[1].Elems())
			}
		case op.Kind == graph.MulMatID && i == 0 && len(op.Src) > 2 && op.Src[2] != nil,
			op.Kind == graph.MulMatIDSum && i == 0 && len(op.Src) > 2 && op.Src[2] != nil:
			n += int64(t.Type.RowBytes(t.Ne[0])) * int64(t.Ne[1]) * int64(distinct(op.Src[2].I32, t.Ne[2]))
		case op.Kind == graph.MulMatIDSwiGLU && i < 2 && len(op.Src) > 3 && op.Src[3] != nil:
			n += int64(t.Type.RowBytes(t.Ne[0])) * int64(t.Ne[1]) * int64(distinct(op.Src[3].I32, t.Ne[2]))
		default:
			n += t.Bytes()
		}
	}
	return n
}

// distinct counts the different experts in ids (all of them when ids is not filled in yet).
func distinct(ids []int32, experts int) int {
	if len(ids) == 0 {
		return experts
	}
	seen := make(map[int32]struct{}, experts)
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	return len(seen)
}
