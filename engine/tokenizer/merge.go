package tokenizer

// symbol is one piece of a word during merging: a byte range of the word, linked to its neighbours, and its
// token id (-1 when the piece is not a token). A symbol merged into its left neighbour keeps n == 0.
type symbol struct {
	start, n   int
	prev, next int
	id         int32
}

// pair is a candidate merge of two adjacent symbols. For BPE, prio is the merge rank (lower first); for
// SentencePiece, the negated token score (higher score first). Ties go to the leftmost pair. size is the merged
// length, to detect candidates made stale by other merges.
type pair struct {
	left, right int
	prio        float64
	size        int
}

func (p pair) before(q pair) bool {
	if p.prio != q.prio {
		return p.prio < q.prio
	}
	return p.left < q.left
}

// pairHeap is a binary min-heap of pairs, typed so that pushing allocates nothing beyond the slice.
type pairHeap []pair

func (h *pairHeap) push(p pair) {
	*h = append(*h, p)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q[i].before(q[parent]) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

func (h *pairHeap) pop() pair {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].before(q[m]) {
			m = l
		}
		if r < len(q) && q[r].before(q[m]) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// splitChars makes one symbol per character of word, sizing characters by their lead byte as llama.cpp does,
// with each symbol's token id from ids.
func splitChars(word string, ids map[string]int32, syms []symbol) []symbol {
	syms = syms[:0]
	for off := 0; off < len(word); {
		n := min(utf8Len(word[off]), len(word)-off)
		i := len(syms)
		next := i + 1
		if off+n == len(word) {
			next = -1
		}
		id, ok := ids[word[off:off+n]]
		if !ok {
			id = -1
		}
		syms = append(syms, symbol{start: off, n: n, prev: i - 1, next: next, id: id})
		off += n
	}
	return syms
}

// merger runs the merge loop of one word; its buffers are reused from word to word.
type merger struct {
	ids  map[string]int32
	heap pairHeap
	syms []symbol
	out  []symbol
}

// merge repeatedly merges the best adjacent pair of word's characters. score reports whether two neighbours
// may merge (merged is their joined text, a substring of word) and with what priority. It returns the
// surviving symbols in order; they are valid until the next call.
func (m *merger) merge(word string, score func(l, r *symbol, merged string) (float64, bool)) []symbol {
	m.syms = splitChars(word, m.ids, m.syms)
	syms := m.syms
	m.heap = m.heap[:0]
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		end := syms[r].start + syms[r].n
		if prio, ok := score(&syms[l], &syms[r], word[syms[l].start:end]); ok {
			m.heap.push(pair{left: l, right: r, prio: prio, size: end - syms[l].start})
		}
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for len(m.heap) > 0 {
		p := m.heap.pop()
		l, r := &syms[p.left], &syms[p.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != p.size {
			continue // one side was merged away since this candidate was queued
		}
		l.n += r.n
		r.n = 0
		if id, ok := m.ids[word[l.start:l.start+l.n]]; ok {
			l.id = id
		} else {
			l.id = -1
		}
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = p.left
		}
		try(l.prev, p.left)
		try(p.left, l.next)
	}
	m.out = m.out[:0]
	if len(syms) == 0 {
		return m.out
	}
	for i := 0; i >= 0; i = syms[i].next {
		m.out = append(m.out, syms[i])
	}
	return m.out
}
