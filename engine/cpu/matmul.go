package cpu

import (
	"fmt"
	"slices"

	"tilelab/engine/graph"
)

// dot is the float32 inner product of two equal-length slices, with four partial sums so the compiler can keep
// them in registers.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// matShapes validates MUL_MAT's operands and returns K, N, M and the float slices.
func matShapes(op *graph.Op) (w *graph.Tensor, x, dst []float32, k, n, m int, err error) {
	if w, err = src(op, 0); err != nil {
		return
	}
	var xt *graph.Tensor
	if xt, err = src(op, 1); err != nil {
		return
	}
	k, n, m = w.Ne[0], w.Ne[1], xt.Rows()
	if max(w.Ne[2], 1)*max(w.Ne[3], 1) != 1 {
		err = fmt.Errorf("op %s %s: weight %s has shape %s; MUL_MAT takes a 2-D weight", op.Kind, op.Name, w.Name, w.Shape())
		return
	}
	if xt.Ne[0] != k {
		err = fmt.Errorf("op %s %s: weight %s has rows of %d, input %s rows of %d", op.Kind, op.Name, w.Name, k, xt.Name, xt.Ne[0])
		return
	}
	if op.Dst.Ne[0] != n || op.Dst.Rows() != m {
		err = fmt.Errorf("op %s %s: destination %s is %s, want [%d %d]", op.Kind, op.Name, op.Dst.Name, op.Dst.Shape(), n, m)
		return
	}
	if x, err = f32s(op, xt, k*m); err != nil {
		return
	}
	dst, err = f32s(op, op.Dst, n*m)
	return
}

// mulMat computes Dst[m][n] = Σk W[n][k]·X[m][k]. The work is split over weight rows, so each row is read (and
// decoded) once and used against every token.
func (b *Backend) mulMat(op *graph.Op) (string, error) {
	w, x, dst, k, n, m, err := matShapes(op)
	if err != nil {
		return "", err
	}
	if p := b.pathFor(w, k); p != pathReference {
		return b.mulMatFast(op, p, w, x, dst, k, n, m, epilogue{})
	}
	rr, err := newRowReader(w, op)
	if err != nil {
		return "", err
	}
	chunks, per := b.chunksFor(n, 4)
	b.reserve(k)
	j := &b.jobs.matRef
	*j = matRefJob{b: b, rr: rr, x: x, dst: dst, k: k, n: n, m: m, per: per}
	runJob(b, chunks, j)
	return KernelReference, nil
}

// matRefJob is the reference MUL_MAT's section: chunks are blocks of weight rows.
type matRefJob struct {
	b            *Backend
	rr           rowReader
	x, dst       []float32
	k, n, m, per int
}

func (jb *matRefJob) Chunk(c, wk int) {
	k, n, x, dst := jb.k, jb.n, jb.x, jb.dst
	buf := jb.b.workerBuf(wk, k)
	for j := c * jb.per; j < min(n, (c+1)*jb.per); j++ {
		row := jb.rr.row(j, buf)
		for i := 0; i < jb.m; i++ {
			dst[i*n+j] = dot(row, x[i*k:(i+1)*k])
		}
	}
}

// expertGroups is MUL_MAT_ID's bookkeeping, kept across ops: the (token, slot) entries of each expert, and the
// chunks of work (an expert and a block of its output rows).
type expertGroups struct {
	count   []int32 // entries per expert
	start   []int32 // first entry of each expert in order
	order   []int32 // entries grouped by expert; an entry is m*U+u, its destination row
	chunkE  []int32
	chunkN0 []int32
	byCount []int32 // the experts with entries, busiest first
}

// group sorts the entries of ids [U,M] by expert (a counting sort, stable) and lays out chunks of per output rows.
func (g *expertGroups) group(ids []int32, experts, n, per int) {
	g.count = resize(g.count, experts)
	g.start = resize(g.start, experts+1)
	g.order = resize(g.order, len(ids))
	clear(g.count)
	for _, e := range ids {
		g.count[e]++
	}
	g.start[0] = 0
	for e := 0; e < experts; e++ {
		g.start[e+1] = g.start[e] + g.count[e]
	}
	fill := g.count // reused as the fill cursor, then restored
	for e := range fill {
		fill[e] = g.start[e]
	}
	for i, e := range ids {
		g.order[fill[e]] = int32(i)
		fill[e]++
	}
	for e := 0; e < experts; e++ {
		g.count[e] = g.start[e+1] - g.start[e]
	}
	// Chunks of the busiest experts first: a chunk's cost grows with its expert's tokens, and the workers claim
	// chunks in order, so the long ones start early and the short ones fill in at the end instead of one long chunk
	// finishing last while the others wait (a prompt's experts get from one to hundreds of its tokens).
	g.byCount = g.byCount[:0]
	for e := 0; e < experts; e++ {
		if g.count[e] != 0 {
			g.byCount = append(g.byCount, int32(e))
		}
	}
	slices.SortStableFunc(g.byCount, func(a, b int32) int { return int(g.count[b] - g.count[a]) })
	g.chunkE, g.chunkN0 = g.chunkE[:0], g.chunkN0[:0]
	for _, e := range g.byCount {
		for n0 := 0; n0 < n; n0 += per {
			g.chunkE = append(g.chunkE, int32(e))
			g.chunkN0 = append(g.chunkN0, int32(n0))
		}
	}
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// mulMatIDShapes validates MUL_MAT_ID's operands.
type idShapes struct {
	w        *graph.Tensor
	x, dst   []float32
	ids      []int32
	k, n, e  int
	u, xu, m int // slots per token, input rows per token (1 or u), tokens
}

func mulMatIDShapes(op *graph.Op) (s idShapes, err error) {
	if s.w, err = src(op, 0); err != nil {
		return
	}
	xt, err := src(op, 1)
	if err != nil {
		return
	}
	it, err := src(op, 2)
	if err != nil {
		return
	}
	s.k, s.n, s.e = s.w.Ne[0], s.w.Ne[1], max(s.w.Ne[2], 1)
	s.u, s.m = it.Ne[0], it.Rows()
	s.xu = xt.Ne[1]
	if max(s.w.Ne[3], 1) != 1 {
		return s, fmt.Errorf("op %s %s: expert weight %s has shape %s; want [K N E]", op.Kind, op.Name, s.w.Name, s.w.Shape())
	}
	if xt.Ne[0] != s.k || (s.xu != 1 && s.xu != s.u) || xt.Ne[2]*max(xt.Ne[3], 1) != s.m {
		return s, fmt.Errorf("op %s %s: input %s is %s; want [%d 1|%d %d] for weight %s and ids %s",
			op.Kind, op.Name, xt.Name, xt.Shape(), s.k, s.u, s.m, s.w.Shape(), it.Shape())
	}
	if op.Dst.Ne[0] != s.n || op.Dst.Ne[1] != s.u || op.Dst.Ne[2]*max(op.Dst.Ne[3], 1) != s.m {
		return s, fmt.Errorf("op %s %s: destination %s is %s, want [%d %d %d]", op.Kind, op.Name, op.Dst.Name, op.Dst.Shape(), s.n, s.u, s.m)
	}
	if s.x, err = f32s(op, xt, s.k*s.xu*s.m); err != nil {
		return
	}
	if s.dst, err = f32s(op, op.Dst, s.n*s.u*s.m); err != nil {
		return
	}
	if s.ids, err = i32s(op, it, s.u*s.m); err != nil {
		return
	}
	for i, id := range s.ids {
		if id < 0 || int(id) >= s.e {
			return s, fmt.Errorf("op %s %s: token %d slot %d asks for expert %d of %d", op.Kind, op.Name, i/s.u, i%s.u, id, s.e)
		}
	}
	return s, nil
}

// xRow is the input row an entry (m*U+u) multiplies: its own slot's row, or the token's one shared row.
func (s *idShapes) xRow(entry int) []float32 {
	r := entry
	if s.xu == 1 {
		r = entry / s.u
	}
	return s.x[r*s.k : (r+1)*s.k]
}

// mulMatID runs each expert's weight against just the tokens routed to it: entries are grouped by expert, so an
// expert's rows are decoded once per op however many tokens chose it.
func (b *Backend) mulMatID(op *graph.Op) (string, error) {
	s, err := mulMatIDShapes(op)
	if err != nil {
		return "", err
	}
	if p := b.pathFor(s.w, s.k); p != pathReference {
		return b.mulMatIDFast(op, p, &s, nil)
	}
	rr, err := newRowReader(s.w, op)
	if err != nil {
		return "", err
	}
	const per = 16
	g := &b.groups
	g.group(s.ids, s.e, s.n, per)
	b.reserve(s.k)
	j := &b.jobs.idRef
	*j = idRefJob{b: b, rr: rr, s: s, per: per}
	runJob(b, len(g.chunkE), j)
	return KernelReference, nil
}

// idRefJob is the reference MUL_MAT_ID's section: chunks are an expert and a block of its output rows.
type idRefJob struct {
	b   *Backend
	rr  rowReader
	s   idShapes
	per int
}

func (jb *idRefJob) Chunk(c, wk int) {
	g, s := &jb.b.groups, &jb.s
	e, n0 := int(g.chunkE[c]), int(g.chunkN0[c])
	entries := g.order[g.start[e]:g.start[e+1]]
	buf := jb.b.workerBuf(wk, s.k)
	for j := n0; j < min(s.n, n0+jb.per); j++ {
		row := jb.rr.row(e*s.n+j, buf)
		for _, en := range entries {
			s.dst[int(en)*s.n+j] = dot(row, s.xRow(int(en)))
		}
	}
}
