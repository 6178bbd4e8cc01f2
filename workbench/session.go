// Package workbench is TileLab's interpreter: the command language of docs/language.md run against the engine,
// with results as tables and charts. A Session implements kernel.Interpreter, so the Jupyter kernel and the
// headless `tilelab run` drive the same code.
package workbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tilelab/engine/pool"
	"tilelab/internal/buildinfo"
	"tilelab/kernel"
	"tilelab/workbench/lang"
	"tilelab/workbench/result"
)

// Options configure a new Session.
type Options struct {
	// Version and Commit identify the TileLab build in `env` and in saved results.
	Version string
	Commit  string
	// Threads is the default worker count; 0 means one per core.
	Threads int
	// Dir is the folder relative paths resolve against (scripts, models, save files); "" means the process's
	// working directory.
	Dir string
	// CacheDir holds generated synthetic models; "" means os.UserCacheDir()/tilelab.
	CacheDir string
	// Stderr, when set, also receives a copy of every error (the headless runner logs there).
	Stderr io.Writer
}

// Session is one interpreter: its settings, loaded models and results survive from cell to cell, and an error in
// one cell leaves them as they were.
type Session struct {
	opts     Options
	settings settings
	vars     map[string]string // `param` values visible as $name outside scripts
	models   *modelSet
	results  []*Record // every result of the session, in order; the last is `last`
	displays int       // counter for display ids
	cmds     map[string]*command
	started  time.Time
	peak     map[int][2]float64 // AMX int8 TOPS and bf16 TFLOPS by thread count, measured on first use
}

// Record is one command's result, kept for `save`.
type Record struct {
	Command string          // the statement as it ran, $parameters replaced by their values
	Written string          // the statement as the script wrote it, when that differs from Command
	Time    time.Time       // when it finished
	Tables  []*result.Table // what it showed
	Charts  []*result.Chart
	Raw     any            // per-repetition data and anything else worth saving
	Context map[string]any // model path and hash, placement summary, settings in force
	Partial bool           // cut short by an interrupt
}

// New returns a session with default settings.
func New(o Options) *Session {
	if o.Threads <= 0 {
		o.Threads = pool.DefaultThreads()
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Commit == "" {
		o.Commit = buildinfo.Commit()
	}
	if o.Dir == "" {
		o.Dir, _ = os.Getwd()
	}
	if o.CacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			o.CacheDir = filepath.Join(d, "tilelab")
		} else {
			o.CacheDir = filepath.Join(os.TempDir(), "tilelab-cache")
		}
	}
	s := &Session{opts: o, vars: map[string]string{}, started: time.Now()}
	s.settings = defaultSettings(o)
	s.models = newModelSet()
	s.cmds = commands()
	return s
}

var _ kernel.Interpreter = (*Session)(nil)

// Last returns the most recent result, or nil.
func (s *Session) Last() *Record {
	if len(s.results) == 0 {
		return nil
	}
	return s.results[len(s.results)-1]
}

// Results returns every result of the session, oldest first.
func (s *Session) Results() []*Record { return s.results }

// Error is a failed statement: the message names the bad token with a hint; the traceback shows the line with
// the token underlined. The Jupyter kernel reports it as ename ErrorName(), evalue Error(), traceback Traceback().
type Error struct {
	File string // the script it came from, or ""
	Line int    // 1-based line in the cell or script
	Src  string // that line
	Col  int    // 0-based column of the bad token within Src, or -1
	Len  int    // length of the underline
	Err  error
}

// Error is the underlying error's message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap exposes the cause (a *lang.Error, context.Canceled, an engine error).
func (e *Error) Unwrap() error { return e.Err }

// ErrorName is the error's class for Jupyter's ename (the kernel's NamedError): "Interrupted" when the cell was
// interrupted, "TileLabError" otherwise.
func (e *Error) ErrorName() string {
	if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
		return "Interrupted"
	}
	return "TileLabError"
}

// Traceback is the where and what of the error, never empty: the location, the line with the token underlined,
// and the message.
func (e *Error) Traceback() []string {
	loc := fmt.Sprintf("line %d", e.Line)
	if e.File != "" {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	tb := []string{loc + ":", "    " + e.Src}
	if e.Col >= 0 && e.Col <= len(e.Src) {
		tb = append(tb, "    "+strings.Repeat(" ", len([]rune(e.Src[:e.Col])))+strings.Repeat("^", max(1, e.Len)))
	}
	return append(tb, e.Error())
}

// wrapError locates err within src: a *lang.Error carries the offsets of the bad token; other errors point at
// the statement.
func wrapError(file, src string, st *lang.Stmt, err error) error {
	var we *Error
	if errors.As(err, &we) {
		return err // from a nested script: already located there
	}
	pos, end := 0, 0
	if st != nil {
		pos, end = st.NamePos, st.NameEnd
	}
	var le *lang.Error
	if errors.As(err, &le) {
		pos, end = le.Pos, le.End
	}
	pos = min(max(pos, 0), len(src))
	end = min(max(end, pos), len(src))
	ls := strings.LastIndexByte(src[:pos], '\n') + 1
	le2 := strings.IndexByte(src[pos:], '\n')
	if le2 < 0 {
		le2 = len(src)
	} else {
		le2 += pos
	}
	n := end - pos
	if end > le2 {
		n = le2 - pos
	}
	return &Error{File: file, Line: 1 + strings.Count(src[:pos], "\n"), Src: src[ls:le2], Col: pos - ls, Len: n, Err: err}
}

// Execute runs a cell: each statement in order, stopping at the first error, which is returned (located in the
// cell) while the session keeps its state.
func (s *Session) Execute(ctx context.Context, code string, out kernel.Output) error {
	return s.exec(ctx, code, out, &scope{vars: s.vars})
}

// scope is what a running script sees: its file, its $parameters and its nesting depth.
type scope struct {
	file  string
	vars  map[string]string
	depth int
}

func (s *Session) exec(ctx context.Context, code string, out kernel.Output, sc *scope) error {
	stmts, err := lang.Parse(code)
	if err != nil {
		return s.logErr(wrapError(sc.file, code, nil, err))
	}
	for _, st := range stmts {
		if err := ctx.Err(); err != nil {
			return s.logErr(wrapError(sc.file, code, st, interrupted(err)))
		}
		if err := s.run(ctx, st, code, out, sc); err != nil {
			return s.logErr(wrapError(sc.file, code, st, err))
		}
	}
	return nil
}

func (s *Session) logErr(err error) error {
	if s.opts.Stderr != nil {
		var we *Error
		if errors.As(err, &we) {
			fmt.Fprintln(s.opts.Stderr, strings.Join(we.Traceback(), "\n"))
		} else {
			fmt.Fprintln(s.opts.Stderr, err)
		}
	}
	return err
}

func interrupted(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("interrupted: %w", err)
	}
	return err
}

// lookup finds a command, or explains that there is none with the nearest name.
func (s *Session) lookup(name string, pos, end int) (*command, error) {
	if c, ok := s.cmds[name]; ok {
		return c, nil
	}
	e := lang.Errorf(pos, end, "unknown command '%s'", name)
	if n := lang.Nearest(name, s.commandNames()); n != "" {
		e.Hint = fmt.Sprintf("did you mean '%s'?", n)
	} else {
		e.Hint = "type help for the list of commands"
	}
	return nil, e
}

func (s *Session) commandNames() []string {
	out := make([]string, 0, len(s.cmds))
	for _, n := range commandOrder {
		if _, ok := s.cmds[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// run substitutes $names, binds the statement to its command and runs it.
func (s *Session) run(ctx context.Context, st *lang.Stmt, src string, out kernel.Output, sc *scope) error {
	if st.Help {
		if st.Name == "" {
			out.Page(s.helpBundle(""))
			return nil
		}
		if _, err := s.lookup(st.Name, st.NamePos, st.NameEnd); err != nil {
			return err
		}
		out.Page(s.helpBundle(st.Name))
		return nil
	}
	cmd, err := s.lookup(st.Name, st.NamePos, st.NameEnd)
	if err != nil {
		return err
	}
	if err := substitute(st, sc.vars); err != nil {
		return err
	}
	call, err := lang.Bind(cmd.spec, st)
	if err != nil {
		return err
	}
	c := &ctxCall{Call: call, s: s, out: out, src: src, sc: sc, ctx: ctx}
	return cmd.run(c)
}

// substitute replaces $name and ${name} in argument values with the scope's parameters.
func substitute(st *lang.Stmt, vars map[string]string) error {
	for i := range st.Args {
		a := &st.Args[i]
		if !strings.Contains(a.Value, "$") {
			continue
		}
		v, err := expand(a.Value, vars)
		if err != nil {
			return &lang.Error{Pos: a.Pos, End: a.End, Msg: err.Error(), Hint: "declare it with param NAME=VALUE or pass it to run"}
		}
		a.Value = v
	}
	return nil
}

func expand(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		j, name := i+1, ""
		if s[j] == '{' {
			k := strings.IndexByte(s[j:], '}')
			if k < 0 {
				return "", fmt.Errorf("unclosed ${ in '%s'", s)
			}
			name, i = s[j+1:j+k], j+k
		} else {
			k := j
			for k < len(s) && (s[k] == '_' || s[k] >= 'a' && s[k] <= 'z' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= '0' && s[k] <= '9') {
				k++
			}
			if k == j {
				b.WriteByte('$')
				continue
			}
			name, i = s[j:k], k-1
		}
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("undefined parameter $%s", name)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}
