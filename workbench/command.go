package workbench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"tilelab/kernel"
	"tilelab/workbench/lang"
	"tilelab/workbench/result"
)

// command is one entry of the language: its declaration, its group in `help`, and what it does.
type command struct {
	spec  *lang.Spec
	group string
	run   func(c *ctxCall) error
}

// Groups in the order `help` lists them.
var groups = []string{"session", "models", "placement", "timing"}

// commandOrder is the order of `help` and of completion.
var commandOrder = []string{
	"help", "print", "clear", "set", "get", "env", "save", "run", "param",
	"synth", "load", "models", "unload", "generate",
	"plan", "placement", "buffers", "ops", "compare",
	"bench", "profile", "matmul", "tiles", "calibrate", "check",
}

// registry collects the commands as each file's init declares them.
var registry = map[string]*command{}

func register(c *command) {
	if _, dup := registry[c.spec.Name]; dup {
		panic("workbench: command registered twice: " + c.spec.Name)
	}
	registry[c.spec.Name] = c
}

func commands() map[string]*command { return registry }

// ctxCall is a bound statement while it runs: its parameters, the session, where output goes.
type ctxCall struct {
	*lang.Call
	s   *Session
	out kernel.Output
	src string // the whole cell or script
	sc  *scope
	ctx context.Context
}

// written is the command as the cell or script has it, continuations joined and $parameters unexpanded.
func (c *ctxCall) written() string { return oneLine(c.src[c.Stmt.Pos:c.Stmt.End]) }

// statement is the command as it ran: the written text with every argument that named a $parameter replaced
// by the value it took, so a report says what was measured rather than what the script could have meant.
func (c *ctxCall) statement() string {
	var b strings.Builder
	at := c.Stmt.Pos
	for _, a := range c.Stmt.Args {
		raw := c.src[a.Pos:a.End]
		if !strings.Contains(raw, "$") || a.Pos < at {
			continue
		}
		b.WriteString(c.src[at:a.Pos])
		b.WriteString(quoteIfNeeded(a.Value, a.Quoted))
		at = a.End
	}
	b.WriteString(c.src[at:c.Stmt.End])
	return oneLine(b.String())
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\\\n", " ")), " ")
}

// quoteIfNeeded writes a value so the language would read it back as the same single word.
func quoteIfNeeded(v string, quoted bool) string {
	if !quoted && v != "" && !strings.ContainsAny(v, " \t\n\"#\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`
}

// errAt is an error pointing at the parameter's token (or the command name for a default).
func (c *ctxCall) errAt(param, hint, format string, args ...any) error {
	e := lang.Errorf(c.Stmt.NamePos, c.Stmt.NameEnd, format, args...)
	if a, ok := c.Where(param); ok {
		e.Pos, e.End = a.Pos, a.End
	}
	e.Hint = hint
	return e
}

// path resolves a file name against the folder of the running script, or the session's folder.
func (c *ctxCall) path(name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	if strings.HasPrefix(name, "~/") {
		if h, err := userHome(); err == nil {
			return filepath.Join(h, name[2:])
		}
	}
	if c.sc.file != "" {
		return filepath.Join(filepath.Dir(c.sc.file), name)
	}
	return filepath.Join(c.s.settings.Dir, name)
}

// bundle renders a table in the session's format.
func (s *Session) tableBundle(t *result.Table) kernel.Bundle {
	b := t.Bundle()
	switch s.settings.Format {
	case "text":
		b.Data = map[string]any{"text/plain": b.Data["text/plain"]}
		b.Metadata = map[string]any{}
	case "markdown":
		b.Data = map[string]any{"text/plain": b.Data["text/plain"], "text/markdown": t.Markdown()}
		b.Metadata = map[string]any{}
	}
	return b
}

// show displays tables and charts. A chart that fails to render is reported on stderr rather than losing the
// table beside it.
func (c *ctxCall) show(tables []*result.Table, charts []*result.Chart) {
	for _, t := range tables {
		c.out.Display(c.s.tableBundle(t), "")
	}
	for _, ch := range charts {
		if c.s.settings.Format == "text" {
			c.out.Display(kernel.Bundle{Data: map[string]any{"text/plain": ch.Text()}, Metadata: map[string]any{}}, "")
			continue
		}
		b, err := ch.Bundle()
		if err != nil {
			c.out.Stream("stderr", fmt.Sprintf("chart not drawn: %v\n", err))
			continue
		}
		c.out.Display(b, "")
	}
}

// emit shows a result and keeps it as `last`.
func (c *ctxCall) emit(rec *Record) {
	c.show(rec.Tables, rec.Charts)
	c.keep(rec)
}

// keep records a result without showing it.
func (c *ctxCall) keep(rec *Record) {
	rec.Command = c.statement()
	if w := c.written(); w != rec.Command {
		rec.Written = w
	}
	rec.Time = time.Now()
	if rec.Context == nil {
		rec.Context = map[string]any{}
	}
	rec.Context["settings"] = c.s.settings.asMap()
	if c.sc.file != "" {
		rec.Context["script"] = c.sc.file
	}
	c.s.results = append(c.s.results, rec)
}

// progress is a display of its own that long commands update as they go.
type progress struct {
	c     *ctxCall
	id    string
	title string
	last  time.Time
}

func (c *ctxCall) progress(title string) *progress {
	c.s.displays++
	p := &progress{c: c, id: fmt.Sprintf("tilelab-%d-%d", c.s.started.UnixNano(), c.s.displays), title: title}
	c.out.Display(textBundle(title+": starting"), p.id)
	return p
}

// step updates the progress line; it rate-limits itself so fast loops do not flood the client.
func (p *progress) step(done, total int, what string) {
	if time.Since(p.last) < 200*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	p.c.out.Update(textBundle(fmt.Sprintf("%s: %d/%d %s", p.title, done, total, what)), p.id)
}

// partial shows what has been measured so far in place of the progress line.
func (p *progress) partial(t *result.Table) { p.c.out.Update(p.c.s.tableBundle(t), p.id) }

// done closes the progress line with a summary.
func (p *progress) done(msg string) { p.c.out.Update(textBundle(p.title+": "+msg), p.id) }

func textBundle(s string) kernel.Bundle {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return kernel.Bundle{Data: map[string]any{"text/plain": s}, Metadata: map[string]any{}}
}
