package echo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"tilelab/kernel"
)

// recorder is an Output that remembers what a cell produced.
type recorder struct {
	events []string
	pages  int
}

func (r *recorder) Stream(name, text string) { r.events = append(r.events, name+":"+text) }
func (r *recorder) Display(b kernel.Bundle, id string) {
	r.events = append(r.events, "display:"+strings.Join(mimes(b), ","))
}
func (r *recorder) Update(b kernel.Bundle, id string) { r.events = append(r.events, "update:"+id) }
func (r *recorder) Result(b kernel.Bundle) {
	r.events = append(r.events, "result:"+b.Data["text/plain"].(string))
}
func (r *recorder) Clear(wait bool)      { r.events = append(r.events, "clear") }
func (r *recorder) Page(b kernel.Bundle) { r.pages++ }
func (r *recorder) Input(p string, pw bool) (string, error) {
	return "", errors.New("no stdin")
}

func mimes(b kernel.Bundle) []string {
	var m []string
	for k := range b.Data {
		m = append(m, k)
	}
	slices.Sort(m)
	return m
}

func TestLanguageSamples(t *testing.T) {
	tests := []struct {
		name, code string
		want       []string
		err        string
	}{
		{"hello world prints to stdout", `print "hello, world"`, []string{"stdout:hello, world\n"}, ""},
		{"stderr=on prints to stderr", `print stderr=on "oops"`, []string{"stderr:oops\n"}, ""},
		{"get threads is a result", "get threads", []string{"result:"}, ""},
		{"chart displays an SVG", "chart", []string{"display:image/svg+xml,text/plain"}, ""},
		{"plan shows a table, then a chart", "plan synth:tiny-moe", []string{"display:text/html,text/plain", "display:image/svg+xml,text/plain"}, ""},
		{"clear clears", "clear", []string{"clear"}, ""},
		{"a comment-only cell does nothing", "# note", nil, ""},
		{"a continued line is one command", "print a \\\n b", []string{"stdout:a b\n"}, ""},
		{"an unknown command is an error naming it", "nosuchcommand", nil, `unknown command "nosuchcommand"`},
		{"an unterminated string is an error", `print "oops`, nil, "unterminated string"},
		{"input without stdin is an error", "input name?", nil, "no stdin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			err := New().Execute(context.Background(), tc.code, r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v; want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.events) != len(tc.want) {
				t.Fatalf("events %q; want %q", r.events, tc.want)
			}
			for i := range tc.want {
				if !strings.HasPrefix(r.events[i], tc.want[i]) {
					t.Errorf("event %d %q; want %q", i, r.events[i], tc.want[i])
				}
			}
		})
	}
	t.Run("?load pages help", func(t *testing.T) {
		r := &recorder{}
		if err := New().Execute(context.Background(), "?load", r); err != nil || r.pages != 1 {
			t.Fatalf("pages %d, %v", r.pages, err)
		}
	})
	t.Run("sleep stops when its context is cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := New().Execute(ctx, "sleep 30", &recorder{})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("error %v after %v", err, time.Since(start))
		}
	})
}

func TestCompleteInspectIsComplete(t *testing.T) {
	in := New()
	m, start, end := in.Complete("pla", 3)
	if !slices.Equal(m, []string{"placement", "plan"}) || start != 0 || end != 3 {
		t.Errorf("Complete(pla) = %v %d %d", m, start, end)
	}
	if _, found := in.Inspect("load", 4, 0); !found {
		t.Error("Inspect(load) not found")
	}
	if _, found := in.Inspect("zzz", 3, 0); found {
		t.Error("Inspect(zzz) found")
	}
	for code, want := range map[string]string{"help": "complete", "load synth:tiny-moe \\": "incomplete", `load "unterminated`: "invalid"} {
		if got, _ := in.IsComplete(code); got != want {
			t.Errorf("IsComplete(%q) = %s; want %s", code, got, want)
		}
	}
}
