package workbench

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"tilelab/kernel"
	"tilelab/workbench/lang"
)

// IsComplete says whether a cell can run as it is: "incomplete" when its last line ends with a continuation
// backslash, "invalid" when it cannot parse (an unterminated string), "complete" otherwise. Unknown commands
// are complete: running them explains the mistake better than refusing to run.
func (s *Session) IsComplete(code string) (status, indent string) {
	_, err := lang.Parse(code)
	var e *lang.Error
	switch {
	case err == nil:
		return "complete", ""
	case errors.As(err, &e) && e.Incomplete:
		return "incomplete", "  "
	}
	return "invalid", ""
}

// logicalLine returns the start of the command line holding the cursor (continuations joined back).
func logicalLine(code string, cursor int) int {
	start := strings.LastIndexByte(code[:cursor], '\n') + 1
	for start > 0 {
		prev := strings.TrimRight(code[:start-1], " \t\r")
		if !strings.HasSuffix(prev, "\\") {
			break
		}
		start = strings.LastIndexByte(prev, '\n') + 1
	}
	return start
}

// words splits a prefix of a line into words, respecting quotes, and reports where the last one starts. A
// trailing blank means the last word is empty and starts at the end.
func words(line string) (ws []string, lastStart int) {
	in, quote, start := false, false, 0
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote:
			if c == '\\' && i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			} else if c == '"' {
				quote = false
			} else {
				cur.WriteByte(c)
			}
		case c == '"':
			if !in {
				in, start = true, i
			}
			quote = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\\' && i+1 < len(line) && (line[i+1] == '\n' || line[i+1] == '\r'):
			if in {
				ws = append(ws, cur.String())
				cur.Reset()
				in = false
			}
		case c == '#' && !in:
			return nil, -1 // in a comment: nothing to complete
		default:
			if !in {
				in, start = true, i
			}
			cur.WriteByte(c)
		}
	}
	if in {
		return append(ws, cur.String()), start
	}
	return append(ws, ""), len(line)
}

// Complete offers what can go at the cursor: command names first on a line, then parameter names, allowed
// values, presets, loaded models and file paths.
func (s *Session) Complete(code string, cursor int) (matches []string, start, end int) {
	cursor = min(max(cursor, 0), len(code))
	ls := logicalLine(code, cursor)
	ws, last := words(code[ls:cursor])
	if last < 0 || len(ws) == 0 {
		return nil, cursor, cursor
	}
	start = ls + last
	cur := ws[len(ws)-1]
	if len(ws) == 1 {
		help := strings.HasPrefix(cur, "?")
		prefix := strings.TrimPrefix(cur, "?")
		for _, n := range s.commandNames() {
			if strings.HasPrefix(n, prefix) {
				if help {
					n = "?" + n
				}
				matches = append(matches, n)
			}
		}
		return matches, start, cursor
	}
	cmd, ok := s.cmds[strings.Trim(ws[0], "?")]
	if !ok {
		return nil, cursor, cursor
	}
	sp := cmd.spec
	if key, val, isKV := strings.Cut(cur, "="); isKV {
		p := sp.Param(key)
		if p == nil {
			return nil, cursor, cursor
		}
		off := len(key) + 1
		if p.List {
			if i := strings.LastIndexByte(val, ','); i >= 0 {
				off += i + 1
				val = val[i+1:]
			}
		}
		return s.valueMatches(p, val), start + off, cursor
	}
	// A bare word: a parameter name not yet given, or the value of the next positional.
	given := map[string]bool{}
	npos := 0
	for _, w := range ws[1 : len(ws)-1] {
		if k, _, isKV := strings.Cut(w, "="); isKV {
			given[k] = true
		} else {
			npos++
		}
	}
	for _, p := range sp.Params {
		if !given[p.Name] && strings.HasPrefix(p.Name+"=", cur) {
			matches = append(matches, p.Name+"=")
		}
	}
	i := 0
	for pi := range sp.Params {
		p := &sp.Params[pi]
		if !p.Positional || given[p.Name] {
			continue
		}
		if i == npos || p.Variadic {
			matches = append(s.valueMatches(p, cur), matches...)
			break
		}
		i++
	}
	return matches, start, cursor
}

// valueMatches offers values of a parameter that start with prefix.
func (s *Session) valueMatches(p *lang.Param, prefix string) []string {
	var cands []string
	switch {
	case p.Complete != nil:
		cands = p.Complete()
	case len(p.Allowed) > 0:
		cands = p.Allowed
	case p.Kind == lang.Bool:
		cands = []string{"on", "off"}
	case p.Name == "model" || p.Name == "name" || p.Name == "a" || p.Name == "b":
		cands = s.models.names()
	}
	if p.Kind == lang.Source {
		for _, pr := range presets() {
			cands = append(cands, "synth:"+pr)
		}
	}
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	if p.Kind == lang.Path || p.Kind == lang.Source && !strings.HasPrefix(prefix, "synth:") {
		out = append(out, s.pathMatches(prefix)...)
	}
	return out
}

// pathMatches lists files and folders that start with prefix, relative to the session folder; folders end in
// '/', and hidden files show only when the prefix asks for them.
func (s *Session) pathMatches(prefix string) []string {
	dir, base := filepath.Split(prefix)
	look := dir
	if look == "" {
		look = "."
	}
	if !filepath.IsAbs(look) {
		look = filepath.Join(s.settings.Dir, look)
	}
	ents, err := os.ReadDir(look)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, base) || strings.HasPrefix(n, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		if e.IsDir() {
			n += "/"
		}
		out = append(out, dir+n)
	}
	sort.Strings(out)
	return out
}

// Inspect returns the help of the command on the cursor's line, with the parameter under the cursor first.
func (s *Session) Inspect(code string, cursor int, detail int) (kernel.Bundle, bool) {
	cursor = min(max(cursor, 0), len(code))
	ls := logicalLine(code, cursor)
	le := strings.IndexByte(code[cursor:], '\n')
	if le < 0 {
		le = len(code)
	} else {
		le += cursor
	}
	line := code[ls:le]
	f := strings.Fields(line)
	if len(f) == 0 {
		return kernel.Bundle{}, false
	}
	cmd, ok := s.cmds[strings.Trim(f[0], "?")]
	if !ok {
		return kernel.Bundle{}, false
	}
	b := commandHelp(cmd)
	// The word under the cursor: if it names a parameter, lead with that parameter's line.
	ws := cursor - ls
	a := strings.LastIndexAny(line[:ws], " \t") + 1
	z := strings.IndexAny(line[ws:], " \t")
	if z < 0 {
		z = len(line)
	} else {
		z += ws
	}
	if key, _, isKV := strings.Cut(line[a:z], "="); isKV {
		if p := cmd.spec.Param(key); p != nil {
			lead := p.Name + " (" + p.Kind.String() + "): " + p.Doc
			if p.Default != "" {
				lead += "; default " + p.Default
			}
			if len(p.Allowed) > 0 {
				lead += "; one of " + strings.Join(p.Allowed, ", ")
			}
			b.Data["text/plain"] = lead + "\n\n" + b.Data["text/plain"].(string)
		}
	}
	return b, true
}
