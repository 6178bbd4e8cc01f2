package tokenizer

import "container/heap"

// symbol is one piece of a word during merging: a byte range of the word, linked to its neighbours.
// A symbol merged into its left neighbour keeps n == 0.
type symbol struct {
	start, n   int
	prev, next int
}

// pair is a candidate merge of two adjacent symbols. For BPE, prio is the merge rank (lower first);
// for SentencePiece, the negated token score (higher score first). Ties go to the leftmost pair.
type pair struct {
	left, right int
	prio        float64
	text        string // the merged text, to detect candidates made stale by other merges
}

type pairQueue []pair

func (q pairQueue) Len() int { return len(q) }
func (q pairQueue) Less(i, j int) bool {
	if q[i].prio != q[j].prio {
		return q[i].prio < q[j].prio
	}
	return q[i].left < q[j].left
}
func (q pairQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairQueue) Push(x any)   { *q = append(*q, x.(pair)) }
func (q *pairQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}

// splitChars makes one symbol per character of word, sizing characters by their lead byte as llama.cpp does.
func splitChars(word string) []symbol {
	syms := make([]symbol, 0, len(word))
	for off := 0; off < len(word); {
		n := min(utf8Len(word[off]), len(word)-off)
		i := len(syms)
		next := i + 1
		if off+n == len(word) {
			next = -1
		}
		syms = append(syms, symbol{start: off, n: n, prev: i - 1, next: next})
		off += n
	}
	return syms
}

// mergeWord repeatedly merges the best adjacent pair of word's symbols. score reports whether the merged
// text of two neighbours may merge and with what priority. It returns the surviving symbols in order.
func mergeWord(word string, syms []symbol, score func(left, right string) (float64, bool)) []symbol {
	q := &pairQueue{}
	text := func(s symbol) string { return word[s.start : s.start+s.n] }
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		if prio, ok := score(text(syms[l]), text(syms[r])); ok {
			heap.Push(q, pair{left: l, right: r, prio: prio, text: word[syms[l].start : syms[r].start+syms[r].n]})
		}
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for q.Len() > 0 {
		p := heap.Pop(q).(pair)
		l, r := &syms[p.left], &syms[p.right]
		if l.n == 0 || r.n == 0 || l.next != p.right || l.n+r.n != len(p.text) {
			continue // one side was merged away since this candidate was queued
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = p.left
		}
		try(l.prev, p.left)
		try(p.left, l.next)
	}
	out := syms[:0:0]
	if len(syms) == 0 {
		return out
	}
	for i := 0; i >= 0; i = syms[i].next {
		out = append(out, syms[i])
	}
	return out
}
