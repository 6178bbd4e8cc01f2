package lang

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// args renders a statement compactly for comparison: name, then each argument as key=value or value.
func render(st *Stmt) string {
	parts := []string{st.Name}
	if st.Help {
		parts[0] = "?" + st.Name
	}
	for _, a := range st.Args {
		v := a.Value
		if a.Quoted {
			v = "«" + v + "»"
		}
		if a.Key != "" {
			v = a.Key + "=" + v
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"a bare command has no arguments", "env", []string{"env"}},
		{"positionals and keys keep their order", "bench moe pp=512 tg=128", []string{"bench moe pp=512 tg=128"}},
		{"a quoted string keeps its spaces", `print "hello, world"`, []string{"print «hello, world»"}},
		{"escaped quote and backslash are resolved", `print "a \"b\" c\\d"`, []string{`print «a "b" c\d»`}},
		{"an unknown escape keeps its backslash", `print "C:\path"`, []string{`print «C:\path»`}},
		{"a quoted value after a key is one value", `generate prompt="Once upon, a time"`, []string{"generate prompt=«Once upon, a time»"}},
		{"an equals sign inside quotes is not a key", `print "a=b"`, []string{"print «a=b»"}},
		{"a comment line produces nothing", "# just a note", nil},
		{"a trailing comment is dropped", "env # the machine", []string{"env"}},
		{"a hash inside a word is text", "print a#b", []string{"print a#b"}},
		{"a hash inside quotes is text", `print "#1"`, []string{"print «#1»"}},
		{"blank lines separate nothing", "\n\n  env  \n\n", []string{"env"}},
		{"each line is a command", "env\nmodels", []string{"env", "models"}},
		{"a trailing backslash continues the line", "load synth:tiny-moe \\\n  amx=all", []string{"load synth:tiny-moe amx=all"}},
		{"a backslash followed by blanks still continues", "load x \\  \n ngl=0", []string{"load x ngl=0"}},
		{"a backslash inside a word is text", `print a\b`, []string{`print a\b`}},
		{"question mark before asks for help", "?load", []string{"?load"}},
		{"question mark after asks for help", "load?", []string{"?load"}},
		{"windows line ends are blanks", "env\r\nmodels\r\n", []string{"env", "models"}},
		{"tabs separate words", "bench\tpp=1", []string{"bench pp=1"}},
		{"a list stays one argument", "bench pp=1,16,128", []string{"bench pp=1,16,128"}},
		{"a value may contain an equals sign", "print x=a=b", []string{"print x=a=b"}},
		{"an empty quoted string is a value", `print ""`, []string{"print «»"}},
		{"a word starting with an equals sign is positional", "print =4", []string{"print =4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stmts, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			var got []string
			for _, st := range stmts {
				got = append(got, render(st))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestParsePositions(t *testing.T) {
	src := "env\nbench  moe pp=512"
	stmts, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	b := stmts[1]
	if b.Line != 2 || src[b.NamePos:b.NameEnd] != "bench" {
		t.Errorf("bench at line %d, name %q", b.Line, src[b.NamePos:b.NameEnd])
	}
	pp := b.Args[1]
	if src[pp.KeyPos:pp.End] != "pp=512" || src[pp.Pos:pp.End] != "512" {
		t.Errorf("pp spans %q, value %q", src[pp.KeyPos:pp.End], src[pp.Pos:pp.End])
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		msg        string
		incomplete bool
	}{
		{"an unterminated string is invalid", `load "unterminated`, "unterminated string", false},
		{"a string cannot span lines", "print \"a\nb\"", "unterminated string", false},
		{"a backslash on the last line wants more", "load synth:tiny-moe \\", "continues on a line that is missing", true},
		{"a quoted command name is refused", `"env"`, "cannot be quoted", false},
		{"a line cannot start with a parameter", "threads=4", "expected a command name", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.src)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v, want *Error", tt.src, err)
			}
			if !strings.Contains(e.Error(), tt.msg) || e.Incomplete != tt.incomplete {
				t.Errorf("Parse(%q) = %q (incomplete %v), want %q (incomplete %v)", tt.src, e.Error(), e.Incomplete, tt.msg, tt.incomplete)
			}
			if e.Pos < 0 || e.End > len(tt.src) || e.Pos > e.End {
				t.Errorf("error span [%d,%d) outside the source", e.Pos, e.End)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name   string
		kind   Kind
		text   string
		quoted bool
		want   []any
	}{
		{"a plain integer", Int, "512", false, []any{512}},
		{"k means 1024", Int, "4k", false, []any{4096}},
		{"M means 1024 squared", Int, "1M", false, []any{1 << 20}},
		{"a negative integer", Int, "-3", false, []any{-3}},
		{"a list keeps its order", Int, "128,1,16", false, []any{128, 1, 16}},
		{"an arithmetic range includes its end", Int, "32..128+32", false, []any{32, 64, 96, 128}},
		{"an arithmetic range stops before passing its end", Int, "1..10+4", false, []any{1, 5, 9}},
		{"a geometric range doubles", Int, "1..16*2", false, []any{1, 2, 4, 8, 16}},
		{"a bare range steps by one", Int, "3..5", false, []any{3, 4, 5}},
		{"ranges take suffixes", Int, "1k..4k*2", false, []any{1024, 2048, 4096}},
		{"lists and ranges mix", Int, "1,4..8*2,100", false, []any{1, 4, 8, 100}},
		{"a float", Float, "0.7", false, []any{0.7}},
		{"a duration", Duration, "250ms", false, []any{250 * time.Millisecond}},
		{"on is true", Bool, "on", false, []any{true}},
		{"off is false", Bool, "off", false, []any{false}},
		{"strings split on commas", String, "cpu,cpu+amx", false, []any{"cpu", "cpu+amx"}},
		{"a quoted string does not split", String, "a,b", true, []any{"a,b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, err := ParseValues(tt.kind, tt.text, tt.quoted)
			if err != nil {
				t.Fatal(err)
			}
			var got []any
			for _, v := range vals {
				got = append(got, v.V)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseValues(%v, %q) = %v, want %v", tt.kind, tt.text, got, tt.want)
			}
		})
	}
}

func TestParseValuesErrors(t *testing.T) {
	tests := []struct {
		name, text string
		kind       Kind
		msg        string
	}{
		{"a word is not an integer", "abc", Int, "not an integer"},
		{"a range backwards is refused", "512..32", Int, "starts after it ends"},
		{"a zero step is refused", "1..8+0", Int, "positive step"},
		{"a factor of one is refused", "1..8*1", Int, "factor of at least 2"},
		{"a geometric range from zero is refused", "0..8*2", Int, "positive start"},
		{"a huge range is refused", "1..1000000", Int, "more than"},
		{"an empty list item is refused", "1,,2", Int, "empty item"},
		{"a word is not a number", "fast", Float, "not a number"},
		{"NaN is not a number", "NaN", Float, "not a number"},
		{"a bare number is not a duration", "5", Duration, "not a duration"},
		{"maybe is not on or off", "maybe", Bool, "not on or off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseValues(tt.kind, tt.text, false)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ParseValues(%q) error = %v, want %q", tt.text, err, tt.msg)
			}
		})
	}
}

var benchSpec = &Spec{
	Name: "bench", Summary: "time a model",
	Params: []Param{
		{Name: "model", Kind: String, Positional: true, Doc: "a loaded model"},
		{Name: "pp", Kind: Int, Default: "512", List: true, Doc: "prompt tokens"},
		{Name: "tg", Kind: Int, Default: "128", List: true, Doc: "generated tokens"},
		{Name: "mode", Kind: Enum, Default: "cpu", List: true, Allowed: []string{"cpu", "cpu+amx", "cpu+gpu", "cpu+gpu+amx"}, Doc: "modes"},
		{Name: "threads", Kind: Int, Doc: "worker threads", Check: func(v Value) error {
			if v.V.(int) < 1 {
				return errors.New("must be at least 1")
			}
			return nil
		}},
		{Name: "profile", Kind: Bool, Default: "off", Doc: "record ops"},
	},
}

func bind(t *testing.T, spec *Spec, src string) (*Call, error) {
	t.Helper()
	stmts, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return Bind(spec, stmts[0])
}

func TestBind(t *testing.T) {
	c, err := bind(t, benchSpec, "bench moe tg=16 threads=4 mode=cpu,cpu+amx")
	if err != nil {
		t.Fatal(err)
	}
	if c.Str("model") != "moe" || c.Int("tg") != 16 || c.Int("threads") != 4 || c.Int("pp") != 512 {
		t.Errorf("model %q tg %d threads %d pp %d", c.Str("model"), c.Int("tg"), c.Int("threads"), c.Int("pp"))
	}
	if !c.Has("tg") || c.Has("pp") {
		t.Errorf("Has(tg) = %v, Has(pp) = %v; want true, false", c.Has("tg"), c.Has("pp"))
	}
	if got := c.Strs("mode"); !reflect.DeepEqual(got, []string{"cpu", "cpu+amx"}) {
		t.Errorf("mode = %q", got)
	}
	if c.Bool("profile") {
		t.Error("profile defaults to off")
	}
}

func TestBindByKeyFillsPositional(t *testing.T) {
	c, err := bind(t, benchSpec, "bench model=moe")
	if err != nil || c.Str("model") != "moe" {
		t.Fatalf("model = %q, err %v", c.Str("model"), err)
	}
}

func TestBindVariadic(t *testing.T) {
	spec := &Spec{Name: "print", Params: []Param{
		{Name: "stderr", Kind: Bool, Default: "off"},
		{Name: "text", Kind: String, Positional: true, Variadic: true},
	}}
	c, err := bind(t, spec, `print stderr=on hello "big world"`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Str("text") != "hello big world" || !c.Bool("stderr") {
		t.Errorf("text %q stderr %v", c.Str("text"), c.Bool("stderr"))
	}
}

func TestBindErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
		token           string
	}{
		{"a misspelt parameter gets a suggestion", "bench thread=4", "unknown parameter 'thread' for bench; did you mean 'threads'?", "thread"},
		{"a far-off parameter lists the real ones", "bench zzzzzzzz=4", "its parameters are model, pp, tg, mode, threads, profile", "zzzzzzzz"},
		{"a misspelt enum value gets a suggestion", "bench mode=cpu+amz", "bad value 'cpu+amz' for mode; did you mean 'cpu+amx'?", "cpu+amz"},
		{"a bad integer names the parameter", "bench pp=lots", "bad value for pp: 'lots' is not an integer", "lots"},
		{"a list for a single-valued parameter is refused", "bench threads=1,2", "threads takes one value", "1,2"},
		{"a check failure is explained", "bench threads=0", "bad value '0' for threads: must be at least 1", "0"},
		{"a parameter given twice is refused", "bench pp=1 pp=2", "parameter 'pp' is given twice", "pp=2"},
		{"one positional too many is refused", "bench a b", "unexpected argument 'b' for bench", "b"},
		{"a bad boolean says on or off", "bench profile=maybe", "write profile=on or profile=off", "maybe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bind(t, benchSpec, tt.src)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Bind(%q) = %v, want *Error", tt.src, err)
			}
			if !strings.Contains(e.Error(), tt.want) {
				t.Errorf("Bind(%q) = %q, want it to contain %q", tt.src, e.Error(), tt.want)
			}
			if got := tt.src[e.Pos:e.End]; got != tt.token {
				t.Errorf("error points at %q, want %q", got, tt.token)
			}
		})
	}
}

func TestBindRequired(t *testing.T) {
	spec := &Spec{Name: "save", Params: []Param{{Name: "file", Kind: Path, Positional: true, Required: true, Doc: "where to write"}}}
	_, err := bind(t, spec, "save")
	if err == nil || !strings.Contains(err.Error(), "save needs FILE") {
		t.Errorf("err = %v, want 'save needs FILE'", err)
	}
}

func TestSweep(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"one list gives one point per value", "bench pp=1,2", []string{"1-128-cpu", "2-128-cpu"}},
		{"the first written varies slowest", "bench tg=1,2 pp=3,4", []string{"3-1-cpu", "4-1-cpu", "3-2-cpu", "4-2-cpu"}},
		{"defaults vary slowest of all", "bench mode=cpu,cpu+amx", []string{"512-128-cpu", "512-128-cpu+amx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := bind(t, benchSpec, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range c.Sweep("pp", "tg", "mode") {
				got = append(got, p["pp"].Text+"-"+p["tg"].Text+"-"+p["mode"].Text)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Sweep = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNearest(t *testing.T) {
	tests := []struct{ word, want string }{
		{"thread", "threads"},
		{"pla", "plan"},
		{"placment", "placement"},
		{"nosuchcommand", ""},
		{"attention", ""},
		{"prof", "profile"},
		{"xyzzy", ""},
	}
	cands := []string{"threads", "plan", "placement", "print", "profile"}
	for _, tt := range tests {
		t.Run(tt.word+" suggests "+tt.want, func(t *testing.T) {
			if got := Nearest(tt.word, cands); got != tt.want {
				t.Errorf("Nearest(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	got := benchSpec.Usage()
	want := "bench [MODEL] [pp=512] [tg=128] [mode=cpu|cpu+amx|cpu+gpu|cpu+gpu+amx] [threads=int] [profile=off]"
	if got != want {
		t.Errorf("Usage = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"env", `print "a \"b\""`, "bench pp=1..512*2 tg=1,2 # c", "load x \\\n amx=all", "?load", `load "unterminated`, "a=b", "x \\", "\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		stmts, err := Parse(src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) returned %T, want *Error", src, err)
			}
			if e.Pos < 0 || e.Pos > e.End || e.End > len(src) {
				t.Fatalf("Parse(%q): error span [%d,%d) outside the source", src, e.Pos, e.End)
			}
			return
		}
		for _, st := range stmts {
			if st.NamePos < 0 || st.NameEnd > len(src) || st.Line < 1 {
				t.Fatalf("Parse(%q): bad statement position %+v", src, st)
			}
			for _, a := range st.Args {
				if a.KeyPos > a.Pos || a.Pos > a.End || a.End > len(src) {
					t.Fatalf("Parse(%q): bad argument span %+v", src, a)
				}
				if _, err := ParseValues(Int, a.Value, a.Quoted); err != nil && strings.Contains(err.Error(), "panic") {
					t.Fatal(err)
				}
			}
			if _, err := Bind(benchSpec, st); err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Bind(%q) returned %T: %v", src, err, err)
				}
			}
		}
	})
}
