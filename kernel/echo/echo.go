// Package echo is a tiny kernel.Interpreter for testing the Jupyter kernel without the workbench. It speaks
// a sliver of the TileLab language — enough for every jupyter_kernel_test sample in LANGUAGE.md — plus a few
// commands that exercise the kernel itself: sleep (honours interrupts), spam (bursts of output), input,
// progress (display updates) and panic.
package echo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"tilelab/kernel"
)

// help is each command's one-line help, which also drives completion.
var help = map[string]string{
	"help":      "help [command]: list commands, or show one command's help",
	"print":     "print [stderr=on] TEXT...: write text to stdout (or stderr)",
	"clear":     "clear: clear this cell's output",
	"set":       "set key=value...: set session defaults",
	"get":       "get key: show a session default as the cell's result",
	"load":      "load SOURCE [as=NAME]: load a GGUF path or synth:PRESET (echo: records the name only)",
	"plan":      "plan SOURCE: place a model from its metadata (echo: a stub table and chart)",
	"bench":     "bench [model] ...: measure tok/s (echo: runs 30 s unless interrupted, like a long benchmark)",
	"placement": "placement [model]: per-tensor placement table (echo: a stub)",
	"chart":     "chart: show a small bar chart (image/svg+xml)",
	"sleep":     "sleep SECONDS: wait, stopping early on interrupt",
	"spam":      "spam N: write N lines, each its own stream message",
	"input":     "input PROMPT: ask the client for a line and print it",
	"progress":  "progress N: show a display and update it N times",
	"panic":     "panic: make the interpreter panic (the kernel must survive)",
}

// Interp is the echo interpreter's session state.
type Interp struct {
	vars   map[string]string
	models []string
}

// New returns a fresh echo interpreter.
func New() kernel.Interpreter {
	return &Interp{vars: map[string]string{"threads": strconv.Itoa(runtime.NumCPU()), "reps": "5"}}
}

// unknownError is an unknown command, named so the error's ename reads well.
type unknownError struct{ msg string }

func (e *unknownError) Error() string     { return e.msg }
func (e *unknownError) ErrorName() string { return "UnknownCommand" }

// Execute runs each logical line of code.
func (in *Interp) Execute(ctx context.Context, code string, out kernel.Output) error {
	for _, line := range logicalLines(code) {
		words, err := split(line)
		if err != nil {
			return err
		}
		if len(words) == 0 {
			continue
		}
		if err := in.run(ctx, words, out); err != nil {
			return err
		}
	}
	return nil
}

func (in *Interp) run(ctx context.Context, words []string, out kernel.Output) error {
	name, args := words[0], words[1:]
	if topic, ok := strings.CutPrefix(name, "?"); ok || strings.HasSuffix(name, "?") {
		if !ok {
			topic = strings.TrimSuffix(name, "?")
		}
		h, found := help[topic]
		if !found {
			return &unknownError{fmt.Sprintf("no help for %q%s", topic, suggest(topic))}
		}
		out.Page(kernel.Bundle{Data: map[string]any{"text/plain": h}})
		return nil
	}
	switch name {
	case "help":
		if len(args) > 0 {
			out.Stream("stdout", help[args[0]]+"\n")
			return nil
		}
		out.Stream("stdout", strings.Join(commands(), "\n")+"\n")
	case "print":
		stream := "stdout"
		var text []string
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "stderr="); ok {
				if v == "on" {
					stream = "stderr"
				}
				continue
			}
			text = append(text, a)
		}
		out.Stream(stream, strings.Join(text, " ")+"\n")
	case "clear":
		out.Clear(false)
	case "set":
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return fmt.Errorf("set: %q is not key=value", a)
			}
			in.vars[k] = v
		}
	case "get":
		if len(args) != 1 {
			return errors.New("get: name one key")
		}
		v, ok := in.vars[args[0]]
		if !ok {
			return fmt.Errorf("get: unknown key %q", args[0])
		}
		out.Result(kernel.Bundle{Data: map[string]any{"text/plain": v}})
	case "load":
		if len(args) == 0 {
			return errors.New("load: name a source")
		}
		in.models = append(in.models, args[0])
		out.Stream("stdout", "loaded "+args[0]+"\n")
	case "placement":
		out.Display(kernel.Bundle{Data: map[string]any{"text/plain": name + ": echo stub", "text/html": "<p>" + name + "</p>"}}, "")
	case "plan":
		// Like the workbench's plan: a table, then a chart.
		out.Display(kernel.Bundle{Data: map[string]any{"text/plain": "plan: echo stub", "text/html": "<p>plan</p>"}}, "")
		out.Display(chart(), "")
	case "chart":
		out.Display(chart(), "")
	case "bench":
		select {
		case <-time.After(30 * time.Second):
			out.Stream("stdout", "bench: done\n")
		case <-ctx.Done():
			return ctx.Err()
		}
	case "sleep":
		secs := 1.0
		if len(args) > 0 {
			f, err := strconv.ParseFloat(args[0], 64)
			if err != nil {
				return fmt.Errorf("sleep: %q is not a number of seconds", args[0])
			}
			secs = f
		}
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
			out.Stream("stdout", "slept\n")
		case <-ctx.Done():
			return ctx.Err()
		}
	case "spam":
		n := 10
		if len(args) > 0 {
			v, err := strconv.Atoi(args[0])
			if err != nil {
				return fmt.Errorf("spam: %q is not a count", args[0])
			}
			n = v
		}
		for i := range n {
			out.Stream("stdout", fmt.Sprintf("line %d\n", i))
		}
	case "input":
		v, err := out.Input(strings.Join(args, " "), false)
		if err != nil {
			return err
		}
		out.Stream("stdout", "got "+v+"\n")
	case "progress":
		n := 3
		if len(args) > 0 {
			n, _ = strconv.Atoi(args[0])
		}
		out.Display(kernel.Bundle{Data: map[string]any{"text/plain": "0%"}}, "progress")
		for i := 1; i <= n; i++ {
			out.Update(kernel.Bundle{Data: map[string]any{"text/plain": fmt.Sprintf("%d%%", 100*i/n)}}, "progress")
		}
	case "panic":
		panic("echo was asked to panic")
	default:
		return &unknownError{fmt.Sprintf("unknown command %q%s", name, suggest(name))}
	}
	return nil
}

func chart() kernel.Bundle {
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><rect x="10" y="20" width="30" height="40" fill="steelblue"/><rect x="60" y="5" width="30" height="55" fill="orange"/></svg>`
	return kernel.Bundle{Data: map[string]any{"text/plain": "<chart: 2 bars>", "image/svg+xml": svg}}
}

func commands() []string {
	names := make([]string, 0, len(help))
	for n := range help {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func suggest(word string) string {
	for _, c := range commands() {
		if strings.HasPrefix(c, word) || strings.HasPrefix(word, c) {
			return fmt.Sprintf("; did you mean %q?", c)
		}
	}
	return ""
}

// logicalLines joins backslash-continued lines and drops comments.
func logicalLines(code string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(code, "\n") {
		if i := strings.Index(l, "#"); i >= 0 && !strings.Contains(l[:i], `"`) {
			l = l[:i]
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " \t\r"), `\`); ok {
			cur += s + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// split splits a line into words; double-quoted strings may hold spaces, with \" and \\ escapes.
func split(line string) ([]string, error) {
	var words []string
	var b strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
		case c == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && (c == ' ' || c == '\t' || c == '\r'):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated string")
	}
	if inWord {
		words = append(words, b.String())
	}
	return words, nil
}

// Complete completes the command name under the cursor.
func (in *Interp) Complete(code string, cursor int) ([]string, int, int) {
	start := cursor
	for start > 0 && code[start-1] != ' ' && code[start-1] != '\n' && code[start-1] != '?' {
		start--
	}
	prefix := code[start:cursor]
	var matches []string
	for _, c := range commands() {
		if strings.HasPrefix(c, prefix) {
			matches = append(matches, c)
		}
	}
	return matches, start, cursor
}

// Inspect shows the help of the command under the cursor.
func (in *Interp) Inspect(code string, cursor int, detail int) (kernel.Bundle, bool) {
	start, end := cursor, cursor
	for start > 0 && code[start-1] != ' ' && code[start-1] != '\n' {
		start--
	}
	for end < len(code) && code[end] != ' ' && code[end] != '\n' {
		end++
	}
	h, ok := help[strings.Trim(code[start:end], "?")]
	if !ok {
		return kernel.Bundle{}, false
	}
	return kernel.Bundle{Data: map[string]any{"text/plain": h}}, true
}

// IsComplete: a trailing backslash continues; an unterminated string is invalid.
func (in *Interp) IsComplete(code string) (string, string) {
	if strings.HasSuffix(strings.TrimRight(code, " \t\r\n"), `\`) {
		return "incomplete", "  "
	}
	for _, l := range logicalLines(code) {
		if _, err := split(l); err != nil {
			return "invalid", ""
		}
	}
	return "complete", ""
}
