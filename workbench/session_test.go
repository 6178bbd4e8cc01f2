package workbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"tilelab/kernel"
)

// recorder is an Output that keeps everything a cell produced, in order.
type recorder struct {
	events  []string
	bundles []kernel.Bundle
	results []kernel.Bundle
	pages   []kernel.Bundle
}

func (r *recorder) Stream(name, text string) { r.events = append(r.events, name+": "+text) }
func (r *recorder) Display(b kernel.Bundle, id string) {
	r.events = append(r.events, "display "+id)
	r.bundles = append(r.bundles, b)
}
func (r *recorder) Update(b kernel.Bundle, id string) {
	r.events = append(r.events, "update "+id)
	r.bundles = append(r.bundles, b)
}
func (r *recorder) Result(b kernel.Bundle) {
	r.events = append(r.events, "result")
	r.results = append(r.results, b)
}
func (r *recorder) Clear(wait bool) { r.events = append(r.events, fmt.Sprintf("clear %v", wait)) }
func (r *recorder) Page(b kernel.Bundle) {
	r.events = append(r.events, "page")
	r.pages = append(r.pages, b)
}
func (r *recorder) Input(prompt string, password bool) (string, error) {
	return "", errors.New("stdin is not allowed")
}

func (r *recorder) text() string {
	var b strings.Builder
	for _, x := range r.bundles {
		b.WriteString(x.Data["text/plain"].(string))
	}
	return b.String()
}

func newSession(t *testing.T) *Session {
	t.Helper()
	dir := t.TempDir()
	return New(Options{Version: "test", Commit: "abc", Threads: 4, Dir: dir, CacheDir: filepath.Join(dir, "cache")})
}

func exec(t *testing.T, s *Session, code string) (*recorder, error) {
	t.Helper()
	r := &recorder{}
	err := s.Execute(context.Background(), code, r)
	return r, err
}

func mustExec(t *testing.T, s *Session, code string) *recorder {
	t.Helper()
	r, err := exec(t, s, code)
	if err != nil {
		t.Fatalf("Execute(%q): %v", code, err)
	}
	return r
}

func TestExecuteOutputs(t *testing.T) {
	tests := []struct {
		name, code string
		want       []string
	}{
		{"print writes to stdout", `print "hello, world"`, []string{"stdout: hello, world\n"}},
		{"print joins bare words", `print hello   world`, []string{"stdout: hello world\n"}},
		{"print stderr=on writes to stderr", `print stderr=on "oops"`, []string{"stderr: oops\n"}},
		{"an empty cell produces nothing", "", nil},
		{"a comment-only cell produces nothing", "# nothing here\n   # nor here\n", nil},
		{"clear clears", "clear", []string{"clear false"}},
		{"clear wait=on waits", "clear wait=on", []string{"clear true"}},
		{"get returns an execute_result", "get threads", []string{"result"}},
		{"?name pages help", "?load", []string{"page"}},
		{"name? pages help", "bench?", []string{"page"}},
		{"a lone ? pages the command list", "?", []string{"page"}},
		{"lines run in order", "print a\nprint b", []string{"stdout: a\n", "stdout: b\n"}},
		{"a continued line is one command", "print a \\\n  b", []string{"stdout: a b\n"}},
		{"set changes silently", "set reps=3", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustExec(t, newSession(t), tt.code)
			if !reflect.DeepEqual(r.events, tt.want) {
				t.Errorf("events = %q, want %q", r.events, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, code, want string
		line             int
		caret            string
	}{
		{"an unknown command suggests the nearest", "benhc", "unknown command 'benhc'; did you mean 'bench'?", 1, "^^^^^"},
		{"a far-off command points at help", "nosuchcommand", "unknown command 'nosuchcommand'; type help for the list of commands", 1, "^^^^^^^^^^^^^"},
		{"a misspelt parameter suggests the nearest", "bench thread=4", "unknown parameter 'thread' for bench; did you mean 'threads'?", 1, "      ^^^^^^"},
		{"an error on line two says so", "print ok\nset threads=zero", "bad value for threads: 'zero' is not an integer", 2, "            ^^^^"},
		{"a value out of range is explained", "set threads=0", "bad value '0' for threads: must be between 1 and 4096", 1, "            ^"},
		{"an unterminated string is refused", `load "unterminated`, "unterminated string", 1, "     ^^^^^^^^^^^^^"},
		{"help of an unknown command suggests", "help lod", "unknown command 'lod'; did you mean 'load'?", 1, "     ^^^"},
		{"an unknown setting suggests", "get thread", "bad value 'thread' for key; did you mean 'threads'?", 1, "    ^^^^^^"},
		{"save with nothing to save says so", "save x.json", "nothing to save yet", 1, "     ^^^^^^"},
		{"an undefined $name is named", "print $nope", "undefined parameter $nope", 1, "      ^^^^^"},
		{"a missing required argument shows usage", "save", "save needs FILE", 1, "^^^^"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := exec(t, newSession(t), tt.code)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Execute(%q) = %v, want *Error", tt.code, err)
			}
			if !strings.Contains(e.Error(), tt.want) {
				t.Errorf("evalue = %q, want it to contain %q", e.Error(), tt.want)
			}
			tb := e.Traceback()
			if len(tb) < 3 || e.Line != tt.line || e.ErrorName() == "" {
				t.Errorf("traceback %q at line %d, want line %d", tb, e.Line, tt.line)
			}
			if got := strings.TrimPrefix(tb[2], "    "); got != tt.caret {
				t.Errorf("caret line %q, want %q (source %q)", got, tt.caret, tb[1])
			}
			if len(r.events) > 0 && tt.line == 1 {
				t.Errorf("a failing cell also produced %q", r.events)
			}
		})
	}
}

func TestStateSurvivesErrors(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "set threads=3 reps=7")
	for _, bad := range []string{"set threads=2 reps=zero", "set threads=2 tile=bogus", "set threads=2 dir=/no/such/folder"} {
		if _, err := exec(t, s, bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	if _, err := exec(t, s, "nosuchcommand"); err == nil {
		t.Fatal("unknown command accepted")
	}
	r := mustExec(t, s, "get threads")
	if got := r.results[0].Data["text/plain"]; got != "3" {
		t.Errorf("threads = %v after errors, want 3 (a failed set must change nothing)", got)
	}
	r = mustExec(t, s, "get reps")
	if got := r.results[0].Data["text/plain"]; got != "7" {
		t.Errorf("reps = %v, want 7", got)
	}
}

func TestSetAndGet(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "set threads=8 warmup=0 seed=7 format=text tile=default")
	for key, want := range map[string]string{"threads": "8", "warmup": "0", "seed": "7", "format": "text", "tile": "default", "reps": "5"} {
		t.Run("get "+key+" returns "+want, func(t *testing.T) {
			r := mustExec(t, s, "get "+key)
			if len(r.results) != 1 || r.results[0].Data["text/plain"] != want {
				t.Errorf("get %s = %v", key, r.results)
			}
		})
	}
	t.Run("set with no parameters lists the settings", func(t *testing.T) {
		r := mustExec(t, s, "set")
		if !strings.Contains(r.text(), "threads") || !strings.Contains(r.text(), "8") {
			t.Errorf("set listed %q", r.text())
		}
	})
	t.Run("get with no key returns every setting", func(t *testing.T) {
		r := mustExec(t, s, "get")
		if !strings.Contains(r.results[0].Data["text/plain"].(string), "threads=8") {
			t.Errorf("get = %v", r.results[0].Data)
		}
	})
}

func TestHelp(t *testing.T) {
	s := newSession(t)
	r := mustExec(t, s, "help")
	all := r.text()
	for _, n := range commandOrder {
		if !strings.Contains(all, "  "+n+" ") {
			t.Errorf("help does not list %s", n)
		}
	}
	r = mustExec(t, s, "help bench")
	for _, want := range []string{"usage: bench [MODEL] [pp=512]", "threads", "example: bench moe"} {
		if !strings.Contains(r.text(), want) {
			t.Errorf("help bench lacks %q:\n%s", want, r.text())
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, n := range commandOrder {
		c, ok := registry[n]
		if !ok {
			t.Errorf("%s is listed but not registered", n)
			continue
		}
		t.Run(n+" has a summary, an example that parses, and documented parameters", func(t *testing.T) {
			if c.spec.Summary == "" || c.spec.Example == "" {
				t.Errorf("summary %q example %q", c.spec.Summary, c.spec.Example)
			}
			for _, p := range c.spec.Params {
				if p.Doc == "" {
					t.Errorf("parameter %s has no doc", p.Name)
				}
			}
			if st, err := exampleBinds(c); err != nil {
				t.Errorf("example %q does not bind: %v (%v)", c.spec.Example, err, st)
			}
		})
	}
	if len(registry) != len(commandOrder) {
		t.Errorf("%d commands registered, %d listed in commandOrder", len(registry), len(commandOrder))
	}
}

func TestEveryCommandRuns(t *testing.T) {
	for _, n := range commandOrder {
		if c, ok := registry[n]; ok && c.run == nil {
			t.Errorf("%s is declared but no file sets its run function", n)
		}
	}
}

func TestEnv(t *testing.T) {
	s := newSession(t)
	r := mustExec(t, s, "env")
	txt := r.text()
	for _, want := range []string{"cpu", "amx", "gpus", "go", "tilelab", "test (commit abc)", "threads"} {
		if !strings.Contains(txt, want) {
			t.Errorf("env lacks %q:\n%s", want, txt)
		}
	}
	if s.Last() == nil || s.Last().Command != "env" {
		t.Errorf("env is not kept as last: %+v", s.Last())
	}
}

func TestSave(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "env\nset out=results")
	t.Run("json holds the environment and the records", func(t *testing.T) {
		mustExec(t, s, "save a.json")
		data, err := os.ReadFile(filepath.Join(s.opts.Dir, "results", "a.json"))
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Environment map[string]string
			Results     []struct {
				Command string
				Tables  []struct {
					Title   string
					Records []map[string]any
				}
				Context map[string]any
			}
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		if d.Environment["go"] == "" || len(d.Results) != 1 || d.Results[0].Command != "env" || len(d.Results[0].Tables[0].Records) == 0 {
			t.Errorf("saved %s", data)
		}
		if d.Results[0].Context["settings"] == nil {
			t.Errorf("settings not saved with the result")
		}
	})
	t.Run("csv holds the table", func(t *testing.T) {
		mustExec(t, s, "save a.csv")
		data, _ := os.ReadFile(filepath.Join(s.opts.Dir, "results", "a.csv"))
		if !strings.HasPrefix(string(data), "what,value\n") {
			t.Errorf("csv = %q", data)
		}
	})
	t.Run("md is a report with the environment", func(t *testing.T) {
		mustExec(t, s, "save sub/a.md what=all")
		data, _ := os.ReadFile(filepath.Join(s.opts.Dir, "results", "sub", "a.md"))
		if !strings.Contains(string(data), "## Environment") || !strings.Contains(string(data), "## `env`") {
			t.Errorf("md = %q", data)
		}
	})
	t.Run("an unknown extension is refused", func(t *testing.T) {
		_, err := exec(t, s, "save a.txt")
		if err == nil || !strings.Contains(err.Error(), "name it .json, .csv or .md") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestRunScript(t *testing.T) {
	s := newSession(t)
	script := "# greets someone\nparam who=world times=1\nprint hello $who x${times}\n"
	if err := os.WriteFile(filepath.Join(s.opts.Dir, "greet.tlab"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := "param n=1\nprint one\nset threads=$n\nnosuch\n"
	if err := os.WriteFile(filepath.Join(s.opts.Dir, "bad.tlab"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, code string
		want       []string
		err        string
	}{
		{"defaults apply", "run greet.tlab", []string{"stdout: hello world x1\n"}, ""},
		{"given values override defaults", "run greet.tlab who=tilelab times=3", []string{"stdout: hello tilelab x3\n"}, ""},
		{"an undeclared parameter is refused with a suggestion", "run greet.tlab whom=x", nil, "greet.tlab declares no parameter 'whom'; did you mean 'who'?"},
		{"a missing script is a clear error", "run nothere.tlab", nil, "cannot read script"},
		{"an error names the script's line", "run bad.tlab", []string{"stdout: one\n"}, "unknown command 'nosuch'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := exec(t, s, tt.code)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if !reflect.DeepEqual(r.events, tt.want) {
				t.Errorf("events = %q, want %q", r.events, tt.want)
			}
		})
	}
	t.Run("a script error locates file and line", func(t *testing.T) {
		_, err := exec(t, s, "run bad.tlab")
		var e *Error
		if !errors.As(err, &e) || !strings.HasSuffix(e.File, "bad.tlab") || e.Line != 4 {
			t.Errorf("error %+v, want bad.tlab line 4", e)
		}
	})
	t.Run("what a script set before its error stays set", func(t *testing.T) {
		exec(t, s, "run bad.tlab n=5")
		if r := mustExec(t, s, "get threads"); r.results[0].Data["text/plain"] != "5" {
			t.Errorf("threads = %v, want 5", r.results[0].Data["text/plain"])
		}
	})
}

func TestScriptThatRunsItselfStops(t *testing.T) {
	s := newSession(t)
	os.WriteFile(filepath.Join(s.opts.Dir, "loop.tlab"), []byte("run loop.tlab\n"), 0o644)
	_, err := exec(t, s, "run loop.tlab")
	if err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("err = %v", err)
	}
}

func TestInterruptStopsBetweenStatements(t *testing.T) {
	s := newSession(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &recorder{}
	err := s.Execute(ctx, "print a\nprint b", r)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, context.Canceled) || e.ErrorName() != "Interrupted" || len(r.events) != 0 {
		t.Errorf("err = %v, events %q", err, r.events)
	}
}

func TestIsComplete(t *testing.T) {
	tests := []struct{ code, want string }{
		{"help", "complete"},
		{"", "complete"},
		{"nosuchcommand", "complete"},
		{"load synth:tiny-moe \\", "incomplete"},
		{"load synth:tiny-moe \\\n  amx=all \\", "incomplete"},
		{`load "unterminated`, "invalid"},
		{`"quoted" command`, "invalid"},
	}
	s := newSession(t)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q is %s", tt.code, tt.want), func(t *testing.T) {
			if got, _ := s.IsComplete(tt.code); got != tt.want {
				t.Errorf("IsComplete(%q) = %q, want %q", tt.code, got, tt.want)
			}
		})
	}
}

func TestComplete(t *testing.T) {
	s := newSession(t)
	os.MkdirAll(filepath.Join(s.opts.Dir, "models"), 0o755)
	os.WriteFile(filepath.Join(s.opts.Dir, "models", "tiny.gguf"), nil, 0o644)
	os.WriteFile(filepath.Join(s.opts.Dir, "exp.tlab"), nil, 0o644)
	tests := []struct {
		name, code string
		want       []string
		start      int
	}{
		{"a command prefix offers commands", "pla", []string{"plan", "placement"}, 0},
		{"a help prefix keeps its question mark", "?pl", []string{"?plan", "?placement"}, 0},
		{"the second line completes on its own", "env\nmod", []string{"models"}, 4},
		{"a parameter prefix offers parameter names", "bench moe thr", []string{"threads="}, 10},
		{"given parameters are not offered again", "bench pp=1 p", nil, 11},
		{"an enum offers its values", "bench mode=cpu+", []string{"cpu+amx", "cpu+gpu", "cpu+gpu+amx"}, 11},
		{"a list completes its last item", "bench mode=cpu,cpu+g", []string{"cpu+gpu", "cpu+gpu+amx"}, 15},
		{"a boolean offers on and off", "plan x tensors=", []string{"on", "off"}, 15},
		{"a source offers presets", "load synth:tiny-", []string{"synth:tiny-dense", "synth:tiny-llama", "synth:tiny-moe"}, 5},
		{"a source offers files", "load mod", []string{"models/"}, 5},
		{"a path descends into folders", "load models/", []string{"models/tiny.gguf"}, 5},
		{"run offers scripts", "run ex", []string{"exp.tlab"}, 4},
		{"help offers command names", "help ben", []string{"bench"}, 5},
		{"get offers settings", "get th", []string{"threads"}, 4},
		{"inside a comment nothing is offered", "env # pl", nil, 8},
		{"a continued line completes its parameters", "load synth:tiny-moe \\\n  am", []string{"amx="}, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, start, end := s.Complete(tt.code, len(tt.code))
			if len(got) == 0 {
				got = nil
			}
			want := tt.want
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(got, want) || start != tt.start || end != len(tt.code) {
				t.Errorf("Complete(%q) = %q [%d,%d), want %q [%d,%d)", tt.code, got, start, end, want, tt.start, len(tt.code))
			}
		})
	}
}

func TestInspect(t *testing.T) {
	s := newSession(t)
	b, ok := s.Inspect("load", 2, 0)
	if !ok || !strings.Contains(b.Data["text/plain"].(string), "usage: load SOURCE") {
		t.Errorf("Inspect(load) = %v, %v", b.Data["text/plain"], ok)
	}
	code := "env\nbench moe threads=4"
	b, ok = s.Inspect(code, len(code)-3, 0)
	if !ok || !strings.HasPrefix(b.Data["text/plain"].(string), "threads (int): worker threads") {
		t.Errorf("Inspect on a parameter = %q", b.Data["text/plain"])
	}
	if _, ok := s.Inspect("nosuch x", 3, 0); ok {
		t.Error("Inspect found help for an unknown command")
	}
	if _, ok := s.Inspect("", 0, 0); ok {
		t.Error("Inspect found help in an empty cell")
	}
}

func TestFormatSetting(t *testing.T) {
	s := newSession(t)
	r := mustExec(t, s, "env")
	if _, ok := r.bundles[0].Data["text/html"]; !ok {
		t.Error("format=auto lacks text/html")
	}
	r = mustExec(t, s, "set format=text\nenv")
	if len(r.bundles[0].Data) != 1 {
		t.Errorf("format=text sent %d MIME types", len(r.bundles[0].Data))
	}
	r = mustExec(t, s, "set format=markdown\nenv")
	if _, ok := r.bundles[0].Data["text/markdown"]; !ok {
		t.Error("format=markdown lacks text/markdown")
	}
}

// exampleBinds parses a command's example and binds it to the spec.
func exampleBinds(c *command) (any, error) {
	stmts, err := langParse(c.spec.Example)
	if err != nil {
		return nil, err
	}
	return langBind(c, stmts)
}

// The Jupyter kernel reads these optional interfaces to fill ename and the traceback.
var (
	_ kernel.NamedError     = (*Error)(nil)
	_ kernel.TracebackError = (*Error)(nil)
)

func TestSetDirMovesRelativePaths(t *testing.T) {
	s := newSession(t)
	sub := filepath.Join(s.opts.Dir, "sub")
	os.MkdirAll(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "hi.tlab"), []byte("print hi from sub\n"), 0o644)
	r := mustExec(t, s, "set dir=sub\nrun hi.tlab")
	if len(r.events) != 1 || r.events[0] != "stdout: hi from sub\n" {
		t.Errorf("events %q", r.events)
	}
	if got, _, _ := s.Complete("run h", 5); len(got) != 1 || got[0] != "hi.tlab" {
		t.Errorf("completion after set dir = %q", got)
	}
	if _, err := exec(t, s, "set dir=nowhere"); err == nil || !strings.Contains(err.Error(), "no folder") {
		t.Errorf("err = %v", err)
	}
}

func TestRecordsShowTheCommandAsItRan(t *testing.T) {
	s := newSession(t)
	script := "param model=synth:tiny-moe amx=off\nplan $model amx=${amx} \\\n  ngl=0 # the seed's question\nplan synth:tiny-moe amx=all\nplan \"$model\" amx=$amx\n"
	if err := os.WriteFile(filepath.Join(s.opts.Dir, "p.tlab"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "run p.tlab amx=off,all")
	tests := []struct {
		name, command, written string
	}{
		{"parameters are replaced by their values, continuations joined", "plan synth:tiny-moe amx=off,all ngl=0", "plan $model amx=${amx} ngl=0"},
		{"a command without parameters keeps no second spelling", "plan synth:tiny-moe amx=all", ""},
		{"a quoted parameter stays quoted", `plan "synth:tiny-moe" amx=off,all`, `plan "$model" amx=$amx`},
	}
	recs := s.Results()
	if len(recs) != len(tests) {
		t.Fatalf("%d results, want %d", len(recs), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if recs[i].Command != tt.command || recs[i].Written != tt.written {
				t.Errorf("command %q written %q; want %q and %q", recs[i].Command, recs[i].Written, tt.command, tt.written)
			}
		})
	}
	t.Run("the report's headings are the commands as they ran", func(t *testing.T) {
		md := s.markdownReport("t", recs, nil)
		if !strings.Contains(md, "## `plan synth:tiny-moe amx=off,all ngl=0`\n\nAs written: `plan $model amx=${amx} ngl=0`") || strings.Contains(md, "## `plan $model") {
			t.Errorf("report.md:\n%s", md)
		}
	})
}
