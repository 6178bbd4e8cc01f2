package workbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"tilelab/kernel"
)

// TextOutput is a kernel.Output for terminals and logs: streams go to Stdout and Stderr, displays and results
// print their text/plain to Stdout. Progress (a display with an id, and its updates) goes to Stderr, one line at
// most every couple of seconds per display, so a long run shows it is alive while Stdout stays a clean report.
type TextOutput struct {
	Stdout, Stderr io.Writer
}

func (o TextOutput) write(w io.Writer, s string) {
	if w == nil {
		return
	}
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	io.WriteString(w, s)
}

func plain(b kernel.Bundle) string {
	s, _ := b.Data["text/plain"].(string)
	return s
}

// Stream writes text to Stdout or Stderr as it comes.
func (o TextOutput) Stream(name, text string) {
	if name == "stderr" {
		io.WriteString(o.Stderr, text)
		return
	}
	io.WriteString(o.Stdout, text)
}

// Display prints the bundle's text: to Stderr when it is a progress display (it has an id), else to Stdout.
func (o TextOutput) Display(b kernel.Bundle, displayID string) {
	if displayID == "" {
		o.write(o.Stdout, plain(b))
		return
	}
	progressShown.Store(displayID, time.Now())
	o.write(o.Stderr, plain(b))
}

// progressEvery is how often a terminal sees a progress display's updates.
const progressEvery = 2 * time.Second

// progressShown remembers when each progress display last printed (display ids are unique per process).
var progressShown sync.Map

// Update prints a one-line progress update to Stderr when the display has been quiet for progressEvery; a
// terminal cannot redraw the earlier line, and partial tables would only repeat the final one.
func (o TextOutput) Update(b kernel.Bundle, displayID string) {
	text := strings.TrimSuffix(plain(b), "\n")
	if text == "" || strings.Contains(text, "\n") {
		return
	}
	if last, ok := progressShown.Load(displayID); ok && time.Since(last.(time.Time)) < progressEvery {
		return
	}
	progressShown.Store(displayID, time.Now())
	o.write(o.Stderr, text)
}

// Result prints the bundle's text.
func (o TextOutput) Result(b kernel.Bundle) { o.write(o.Stdout, plain(b)) }

// Clear does nothing on a terminal.
func (o TextOutput) Clear(wait bool) {}

// Page prints the help text.
func (o TextOutput) Page(b kernel.Bundle) { o.write(o.Stdout, plain(b)) }

// Input refuses: headless runs take no input.
func (o TextOutput) Input(prompt string, password bool) (string, error) {
	return "", errors.New("no input in a headless run")
}

// RunFile runs a script file in this session with the given parameters (as `run FILE key=value...` does).
func (s *Session) RunFile(ctx context.Context, path string, params map[string]string, out kernel.Output) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read script: %w", err)
	}
	return s.runScript(ctx, path, string(data), params, out, 1, func(key, hint string) error {
		return s.logErr(fmt.Errorf("%s declares no parameter '%s'; %s", path, key, hint))
	})
}
