package kernel

import (
	"encoding/json"
	"sync"
	"unicode/utf8"
)

// history keeps this session's stored cells in memory, for history_request (tail, range, search) as
// IPython's history manager answers it. The control goroutine may read it while a cell runs, hence the lock.
type history struct {
	mu      sync.Mutex
	session int
	entries []historyEntry
}

type historyEntry struct {
	line   int
	input  string
	output *string // the cell's execute_result as text/plain, if any
}

func (h *history) add(line int, input string, output *string) {
	h.mu.Lock()
	h.entries = append(h.entries, historyEntry{line, input, output})
	h.mu.Unlock()
}

// historyRequest is history_request's content.
type historyRequest struct {
	Output         bool    `json:"output"`
	Raw            bool    `json:"raw"`
	HistAccessType string  `json:"hist_access_type"`
	Session        int     `json:"session"`
	Start          int     `json:"start"`
	Stop           *int    `json:"stop"`
	N              *int    `json:"n"`
	Pattern        *string `json:"pattern"`
	Unique         bool    `json:"unique"`
}

// query returns the entries a request selects, oldest first.
func (h *history) query(req historyRequest) []historyEntry {
	h.mu.Lock()
	all := append([]historyEntry(nil), h.entries...)
	h.mu.Unlock()
	var out []historyEntry
	switch req.HistAccessType {
	case "tail":
		n := 10
		if req.N != nil {
			n = *req.N
		}
		out = all[max(0, len(all)-max(n, 0)):]
	case "range":
		// Session 0 is the current one; negative sessions count back to earlier ones, which an in-memory
		// history does not have.
		if req.Session != 0 && req.Session != h.session {
			return nil
		}
		for _, e := range all {
			if e.line >= req.Start && (req.Stop == nil || e.line < *req.Stop) {
				out = append(out, e)
			}
		}
	case "search":
		pattern := "*"
		if req.Pattern != nil {
			pattern = *req.Pattern
		}
		for _, e := range all {
			if glob(pattern, e.input) {
				out = append(out, e)
			}
		}
		if req.Unique {
			// Keep each input's latest occurrence, as IPython does.
			seen := map[string]bool{}
			var uniq []historyEntry
			for i := len(out) - 1; i >= 0; i-- {
				if !seen[out[i].input] {
					seen[out[i].input] = true
					uniq = append([]historyEntry{out[i]}, uniq...)
				}
			}
			out = uniq
		}
		if req.N != nil && *req.N >= 0 && len(out) > *req.N {
			out = out[len(out)-*req.N:]
		}
	}
	return out
}

func (k *Kernel) history(sock *router, m *message) {
	var req historyRequest
	if err := json.Unmarshal(m.content, &req); err != nil {
		k.reply(sock, m, "history_reply", map[string]any{"status": "error", "ename": "BadRequest", "evalue": err.Error(), "traceback": []string{err.Error()}}, nil)
		return
	}
	items := []any{}
	for _, e := range k.hist.query(req) {
		if req.Output {
			var out any
			if e.output != nil {
				out = *e.output
			}
			items = append(items, []any{k.hist.session, e.line, []any{e.input, out}})
		} else {
			items = append(items, []any{k.hist.session, e.line, e.input})
		}
	}
	k.reply(sock, m, "history_reply", map[string]any{"status": "ok", "history": items}, nil)
}

// glob matches s against a pattern with SQLite GLOB's wildcards, which IPython's history search uses:
// * any run of characters, ? one character, [abc] or [a-z] or [^abc] one character from a set.
func glob(pattern, s string) bool {
	// Iterative matching with one backtrack point for the last star: linear in practice, no recursion.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				_, n := utf8.DecodeRuneInString(s[i:])
				p, i = p+1, i+n
				continue
			case '[':
				r, n := utf8.DecodeRuneInString(s[i:])
				if end, ok := classMatch(pattern[p:], r); end > 0 && ok {
					p, i = p+end, i+n
					continue
				} else if end == 0 && pattern[p] == s[i] { // an unclosed '[' is literal
					p, i = p+1, i+1
					continue
				}
			default:
				if pattern[p] == s[i] {
					p, i = p+1, i+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starI:])
		starI += n
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// classMatch matches r against the class at the start of pat ("[...]"), returning the class's length in
// bytes (0 when it is not closed) and whether r is in it.
func classMatch(pat string, r rune) (int, bool) {
	i := 1
	negate := false
	if i < len(pat) && pat[i] == '^' {
		negate, i = true, i+1
	}
	in := false
	first := true
	for i < len(pat) {
		if pat[i] == ']' && !first {
			return i + 1, in != negate
		}
		first = false
		lo, n := utf8.DecodeRuneInString(pat[i:])
		i += n
		hi := lo
		if i+1 < len(pat) && pat[i] == '-' && pat[i+1] != ']' {
			hi, n = utf8.DecodeRuneInString(pat[i+1:])
			i += 1 + n
		}
		if lo <= r && r <= hi {
			in = true
		}
	}
	return 0, false
}
