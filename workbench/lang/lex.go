// Package lang is TileLab's command language: one command per line, `name positional... key=value...`, with
// double-quoted strings, `#` comments, trailing-backslash continuation, lists and ranges that expand into every
// combination, and `?name` help. It knows nothing about what the commands do: a Spec declares a command's
// parameters, and Bind checks a parsed statement against it, so help, completion and error messages all derive
// from the same declarations.
package lang

import (
	"fmt"
	"strings"
)

// Word is one whitespace-separated word of a statement, after quotes and escapes are resolved.
type Word struct {
	Text   string // the word with quotes removed and escapes resolved
	Pos    int    // byte offset of its first byte in the source
	End    int    // byte offset just after it
	Quoted bool   // some part of it was inside double quotes
	// eq is the index in Text of the '=' that separates a key from its value, or -1. Only an '=' in the
	// unquoted prefix after an identifier counts, so `"a=b"` stays a plain word.
	eq int
}

// Arg is one argument of a statement: positional (Key == "") or key=value.
type Arg struct {
	Key    string
	KeyPos int // offset of the key; equal to Pos for a positional argument
	Value  string
	Pos    int // offset of the value
	End    int
	Quoted bool // the value (or part of it) was quoted, so it is taken literally: no lists, no ranges
}

// Stmt is one command line: the command name and its arguments.
type Stmt struct {
	Name    string
	NamePos int
	NameEnd int
	// Help is set by `?name` or `name?`: show the command's help instead of running it.
	Help bool
	Args []Arg
	Line int // 1-based line of the command name
	Pos  int // offset of the first byte of the statement
	End  int // offset just after its last word
}

// Error is a problem with a particular token of the source. Pos and End delimit the token; Hint is the
// suggestion shown after the message ("did you mean 'threads'?").
type Error struct {
	Pos, End int
	Msg      string
	Hint     string
	// Incomplete marks input that more lines could still complete (a trailing backslash), as opposed to input
	// that is wrong whatever follows (an unterminated string).
	Incomplete bool
}

// Error is the message with its hint, as a cell's evalue shows it.
func (e *Error) Error() string {
	if e.Hint == "" {
		return e.Msg
	}
	return e.Msg + "; " + e.Hint
}

// Errorf builds an Error for the token at [pos, end).
func Errorf(pos, end int, format string, args ...any) *Error {
	return &Error{Pos: pos, End: end, Msg: fmt.Sprintf(format, args...)}
}

// Parse splits source text into statements. Empty lines and comments produce none.
func Parse(src string) ([]*Stmt, error) {
	words, err := lex(src)
	if err != nil {
		return nil, err
	}
	var stmts []*Stmt
	for _, line := range words {
		st, err := build(src, line)
		if err != nil {
			return stmts, err
		}
		stmts = append(stmts, st)
	}
	return stmts, nil
}

// lex returns the words of each logical line (continuations joined), skipping lines with no words.
func lex(src string) ([][]Word, error) {
	var (
		lines [][]Word
		cur   []Word
		w     strings.Builder
		in    bool // inside a word
		start int
		quote bool
		eq    = -1
	)
	endWord := func(end int) {
		if in {
			cur = append(cur, Word{Text: w.String(), Pos: start, End: end, Quoted: quote, eq: eq})
		}
		in, quote, eq = false, false, -1
		w.Reset()
	}
	endLine := func() {
		if len(cur) > 0 {
			lines = append(lines, cur)
		}
		cur = nil
	}
	begin := func(i int) {
		if !in {
			in, start = true, i
		}
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			endWord(i)
			i++
		case c == '\n':
			endWord(i)
			endLine()
			i++
		case c == '#' && !in:
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '\\' && continuation(src, i):
			endWord(i)
			j := i + 1
			for j < len(src) && src[j] != '\n' {
				j++
			}
			if j >= len(src) {
				return nil, &Error{Pos: i, End: i + 1, Msg: "the last line ends with '\\', so the command continues on a line that is missing", Incomplete: true}
			}
			i = j + 1
		case c == '"':
			begin(i)
			quote = true
			j, err := readString(src, i, &w)
			if err != nil {
				return nil, err
			}
			i = j
		default:
			begin(i)
			if c == '=' && eq < 0 && !quote && isIdent(w.String()) {
				eq = w.Len()
			}
			w.WriteByte(c)
			i++
		}
	}
	endWord(len(src))
	endLine()
	return lines, nil
}

// continuation reports whether the backslash at i is the last non-blank character of its line.
func continuation(src string, i int) bool {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case ' ', '\t', '\r':
		case '\n':
			return true
		default:
			return false
		}
	}
	return true
}

// readString reads the quoted string starting at src[i] == '"' into w and returns the offset after the closing
// quote. `\"` and `\\` are escapes, as are `\n` and `\t` for convenience; any other backslash is kept as typed
// so Windows-style paths survive.
func readString(src string, i int, w *strings.Builder) (int, error) {
	open := i
	for i++; i < len(src); i++ {
		switch c := src[i]; c {
		case '"':
			return i + 1, nil
		case '\n':
			return 0, &Error{Pos: open, End: i, Msg: fmt.Sprintf("unterminated string %s", clip(src[open:i])), Hint: "close it with '\"' on the same line"}
		case '\\':
			if i+1 < len(src) {
				switch src[i+1] {
				case '"', '\\':
					w.WriteByte(src[i+1])
					i++
					continue
				case 'n':
					w.WriteByte('\n')
					i++
					continue
				case 't':
					w.WriteByte('\t')
					i++
					continue
				}
			}
			w.WriteByte(c)
		default:
			w.WriteByte(c)
		}
	}
	return 0, &Error{Pos: open, End: len(src), Msg: fmt.Sprintf("unterminated string %s", clip(src[open:])), Hint: "close it with '\"'"}
}

func clip(s string) string {
	if len(s) > 24 {
		s = s[:24] + "..."
	}
	return s
}

// isIdent reports whether s can be a parameter name: a letter or '_' then letters, digits, '_' or '-'.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case i > 0 && (r == '-' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

func build(src string, words []Word) (*Stmt, error) {
	name := words[0]
	st := &Stmt{Name: name.Text, NamePos: name.Pos, NameEnd: name.End, Pos: name.Pos, End: words[len(words)-1].End}
	st.Line = 1 + strings.Count(src[:name.Pos], "\n")
	switch {
	case name.Quoted:
		return nil, &Error{Pos: name.Pos, End: name.End, Msg: fmt.Sprintf("a command name cannot be quoted: %s", src[name.Pos:name.End]), Hint: "write the command's name bare, e.g. print \"text\""}
	case name.eq >= 0:
		return nil, &Error{Pos: name.Pos, End: name.End, Msg: fmt.Sprintf("expected a command name, found the parameter '%s'", name.Text), Hint: "a line starts with a command, e.g. set " + name.Text}
	}
	if strings.HasPrefix(st.Name, "?") {
		st.Help, st.Name = true, strings.TrimLeft(st.Name, "?")
	}
	if strings.HasSuffix(st.Name, "?") {
		st.Help, st.Name = true, strings.TrimRight(st.Name, "?")
	}
	for _, w := range words[1:] {
		a := Arg{Value: w.Text, KeyPos: w.Pos, Pos: w.Pos, End: w.End, Quoted: w.Quoted}
		if w.eq >= 0 {
			a.Key = w.Text[:w.eq]
			a.Value = w.Text[w.eq+1:]
			a.Pos = w.Pos + w.eq + 1
		}
		st.Args = append(st.Args, a)
	}
	return st, nil
}
