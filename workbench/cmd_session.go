package workbench

import (
	"context"
	"fmt"
	"html"
	"os"
	"slices"
	"sort"
	"strings"

	"tilelab/kernel"
	"tilelab/workbench/lang"
	"tilelab/workbench/result"
)

func init() {
	register(&command{group: "session", run: runHelp, spec: &lang.Spec{
		Name: "help", Summary: "list the commands, or show one command's parameters",
		Doc:     "Without a name, lists every command by group. With one, shows its usage, parameters (kind, default, allowed values) and an example. `?name` or `name?` shows the same in the pager.",
		Example: "help bench",
		Params:  []lang.Param{{Name: "command", Kind: lang.String, Positional: true, Doc: "the command to explain", Complete: func() []string { return commandOrder }}},
	}})
	register(&command{group: "session", run: runPrint, spec: &lang.Spec{
		Name: "print", Summary: "write text to stdout (or stderr)",
		Doc:     "Words are joined by single spaces; quote text to keep its spacing or to include '#'.",
		Example: `print "hello, world"`,
		Params: []lang.Param{
			{Name: "stderr", Kind: lang.Bool, Default: "off", Doc: "write to stderr instead of stdout"},
			{Name: "text", Kind: lang.String, Positional: true, Variadic: true, Doc: "the text"},
		},
	}})
	register(&command{group: "session", run: func(c *ctxCall) error { c.out.Clear(c.Bool("wait")); return nil }, spec: &lang.Spec{
		Name: "clear", Summary: "clear this cell's output",
		Example: "clear",
		Params:  []lang.Param{{Name: "wait", Kind: lang.Bool, Default: "off", Doc: "clear only when the next output arrives (avoids flicker)"}},
	}})
	register(&command{group: "session", run: runSet, spec: &lang.Spec{
		Name: "set", Summary: "change session defaults (threads, reps, warmup, seed, tile, format, out, dir)",
		Doc:     "Without parameters, shows every setting. Commands use these unless given their own value.",
		Example: "set threads=16 reps=5",
		Params:  settingParams,
	}})
	register(&command{group: "session", run: runGet, spec: &lang.Spec{
		Name: "get", Summary: "show a session setting as the cell's result",
		Example: "get threads",
		Params:  []lang.Param{{Name: "key", Kind: lang.Enum, Allowed: settingNames(), Positional: true, Doc: "the setting"}},
	}})
	register(&command{group: "session", run: runParam, spec: &lang.Spec{
		Name: "param", Summary: "declare a script parameter and its default ($name in later lines)",
		Doc:     "In a script, `param model=synth:tiny-moe` makes $model available, unless `run` was given model=... . Outside scripts it sets $name for later cells if not set yet.",
		Example: "param model=synth:tiny-moe pp=512",
		AnyKeys: true,
	}})
	register(&command{group: "session", run: runScript, spec: &lang.Spec{
		Name: "run", Summary: "run a .tlab script in this session, with parameters",
		Doc:     "key=value pairs override the script's `param` defaults. Results join this session's, so `save` afterwards saves them.",
		Example: "run experiments/seed-table.tlab model=synth:tiny-moe",
		Params:  []lang.Param{{Name: "file", Kind: lang.Path, Positional: true, Required: true, Doc: "the script (.tlab)"}},
		AnyKeys: true,
	}})
}

func runHelp(c *ctxCall) error {
	name := c.Str("command")
	if name != "" {
		if _, err := c.s.lookup(name, c.Stmt.Args[0].Pos, c.Stmt.Args[0].End); err != nil {
			return err
		}
	}
	b := c.s.helpBundle(name)
	if c.s.settings.Format == "text" {
		b.Data = map[string]any{"text/plain": b.Data["text/plain"]}
	}
	c.out.Display(b, "")
	return nil
}

// helpBundle is the help of one command, or the list of all, as text and HTML.
func (s *Session) helpBundle(name string) kernel.Bundle {
	if name == "" {
		var b strings.Builder
		b.WriteString("TileLab commands (help NAME or ?NAME for details):\n")
		var h strings.Builder
		h.WriteString("<table><thead><tr><th>group</th><th>command</th><th>what it does</th></tr></thead><tbody>\n")
		for _, g := range groups {
			fmt.Fprintf(&b, "\n%s\n", g)
			for _, n := range s.commandNames() {
				cmd := s.cmds[n]
				if cmd.group != g {
					continue
				}
				fmt.Fprintf(&b, "  %-10s %s\n", n, cmd.spec.Summary)
				fmt.Fprintf(&h, "<tr><td>%s</td><td><code>%s</code></td><td>%s</td></tr>\n", g, n, html.EscapeString(cmd.spec.Summary))
			}
		}
		b.WriteString("\nValues: 512, 4k, 0.5, 250ms, on/off, \"quoted text\"; lists m=1,16,128; ranges m=32..512+32, m=1..4096*2.\n")
		h.WriteString("</tbody></table>\n")
		return kernel.Bundle{Data: map[string]any{"text/plain": b.String(), "text/html": h.String()}, Metadata: map[string]any{}}
	}
	return commandHelp(s.cmds[name])
}

func commandHelp(cmd *command) kernel.Bundle {
	sp := cmd.spec
	var b strings.Builder
	fmt.Fprintf(&b, "%s — %s\n\nusage: %s\n", sp.Name, sp.Summary, sp.Usage())
	if sp.Doc != "" {
		fmt.Fprintf(&b, "\n%s\n", sp.Doc)
	}
	t := result.NewTable("", "parameter", "kind", "default", "allowed", "what it is")
	for _, p := range sp.Params {
		name := p.Name
		if p.Positional {
			name = strings.ToUpper(p.Name) + " or " + p.Name + "="
		}
		kind := p.Kind.String()
		if p.List {
			kind += " list"
		}
		t.Add(name, kind, p.Default, strings.Join(p.Allowed, ", "), p.Doc)
	}
	var h strings.Builder
	fmt.Fprintf(&h, "<p><b>%s</b> — %s</p><pre>%s</pre>", sp.Name, html.EscapeString(sp.Summary), html.EscapeString(sp.Usage()))
	if sp.Doc != "" {
		fmt.Fprintf(&h, "<p>%s</p>", html.EscapeString(sp.Doc))
	}
	if len(sp.Params) > 0 {
		b.WriteString("\n" + t.Text())
		h.WriteString(t.HTML())
	}
	if sp.Example != "" {
		fmt.Fprintf(&b, "\nexample: %s\n", sp.Example)
		fmt.Fprintf(&h, "<p>example: <code>%s</code></p>", html.EscapeString(sp.Example))
	}
	return kernel.Bundle{Data: map[string]any{"text/plain": b.String(), "text/html": h.String()}, Metadata: map[string]any{}}
}

func runPrint(c *ctxCall) error {
	stream := "stdout"
	if c.Bool("stderr") {
		stream = "stderr"
	}
	c.out.Stream(stream, c.Str("text")+"\n")
	return nil
}

func runSet(c *ctxCall) error {
	// Every value is checked before any is applied: a failed set changes nothing.
	type change struct {
		name string
		v    lang.Value
	}
	var changes []change
	for _, p := range settingParams {
		if !c.Has(p.Name) {
			continue
		}
		v := c.Values(p.Name)[0]
		if p.Name == "tile" {
			if err := checkTile(v.Text); err != nil {
				return c.errAt("tile", "run tiles to find one, or set tile=default", "bad value '%s' for tile: %v", v.Text, err)
			}
		}
		if p.Name == "out" || p.Name == "dir" {
			v.Text = c.path(v.Text)
		}
		if p.Name == "dir" {
			if st, err := os.Stat(v.Text); err != nil || !st.IsDir() {
				return c.errAt("dir", "give an existing folder", "no folder %s", v.Text)
			}
		}
		changes = append(changes, change{p.Name, v})
	}
	for _, ch := range changes {
		c.s.settings.apply(ch.name, ch.v)
	}
	if len(changes) == 0 {
		t := result.NewTable("settings", "setting", "value", "what it is")
		for _, p := range settingParams {
			txt, _, _ := c.s.settings.get(p.Name)
			t.Add(p.Name, txt, p.Doc)
		}
		c.show([]*result.Table{t}, nil)
	}
	return nil
}

func runGet(c *ctxCall) error {
	name := c.Str("key")
	if name == "" {
		m := c.s.settings.asMap()
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%v\n", k, m[k])
		}
		c.out.Result(kernel.Bundle{Data: map[string]any{"text/plain": strings.TrimRight(b.String(), "\n"), "application/json": m}, Metadata: map[string]any{}})
		return nil
	}
	txt, v, _ := c.s.settings.get(name)
	c.out.Result(kernel.Bundle{Data: map[string]any{"text/plain": txt, "application/json": map[string]any{name: v}}, Metadata: map[string]any{}})
	return nil
}

func runParam(c *ctxCall) error {
	if len(c.Extra) == 0 {
		return lang.Errorf(c.Stmt.NamePos, c.Stmt.NameEnd, "param needs at least one NAME=VALUE")
	}
	for _, a := range c.Stmt.Args {
		if a.Key == "" {
			return &lang.Error{Pos: a.Pos, End: a.End, Msg: fmt.Sprintf("param takes NAME=VALUE, not '%s'", a.Value), Hint: "e.g. param model=synth:tiny-moe"}
		}
		if _, set := c.sc.vars[a.Key]; !set {
			c.sc.vars[a.Key] = a.Value
		}
	}
	return nil
}

// maxDepth bounds scripts running scripts, so a script that runs itself fails instead of recursing forever.
const maxDepth = 8

func runScript(c *ctxCall) error {
	file := c.path(c.Str("file"))
	if c.sc.depth >= maxDepth {
		return c.errAt("file", "does a script run itself?", "scripts nested more than %d deep", maxDepth)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return c.errAt("file", "paths are relative to "+c.baseDir(), "cannot read script: %v", err)
	}
	return c.s.runScript(c.ctx, file, string(data), c.Extra, c.out, c.sc.depth+1, func(key, hint string) error {
		for _, a := range c.Stmt.Args {
			if a.Key == key {
				return &lang.Error{Pos: a.KeyPos, End: a.End, Msg: fmt.Sprintf("%s declares no parameter '%s'", c.Str("file"), key), Hint: hint}
			}
		}
		return fmt.Errorf("%s declares no parameter '%s'; %s", c.Str("file"), key, hint)
	})
}

func (c *ctxCall) baseDir() string {
	if c.sc.file != "" {
		return "the script's folder"
	}
	return c.s.settings.Dir
}

// scriptParams lists the names a script declares with `param`, in order.
func scriptParams(src string) ([]string, error) {
	stmts, err := lang.Parse(src)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, st := range stmts {
		if st.Name != "param" {
			continue
		}
		for _, a := range st.Args {
			if a.Key != "" {
				names = append(names, a.Key)
			}
		}
	}
	return names, nil
}

// runScript runs a script's text with the given parameters. unknown builds the error for a parameter the
// script does not declare.
func (s *Session) runScript(ctx context.Context, file, src string, params map[string]string, out kernel.Output, depth int, unknown func(key, hint string) error) error {
	declared, err := scriptParams(src)
	if err != nil {
		return wrapError(file, src, nil, err)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys) // with several undeclared parameters, the same one is named every time
	for _, k := range keys {
		if slices.Contains(declared, k) {
			continue
		}
		hint := "it declares none"
		if n := lang.Nearest(k, declared); n != "" {
			hint = fmt.Sprintf("did you mean '%s'?", n)
		} else if len(declared) > 0 {
			hint = "it declares " + strings.Join(declared, ", ")
		}
		return unknown(k, hint)
	}
	vars := map[string]string{}
	for k, v := range params {
		vars[k] = v
	}
	return s.exec(ctx, src, out, &scope{file: file, vars: vars, depth: depth})
}
