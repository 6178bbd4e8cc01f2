package lang

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Param declares one parameter of a command. Help, completion, validation and error messages all come from it.
type Param struct {
	Name    string
	Kind    Kind
	Default string   // as the user would type it; "" means no default
	Allowed []string // the words an Enum accepts (completion offers them)
	Doc     string
	// List lets the parameter take a list or range (`m=1,16,128`, `m=32..512+32`).
	List bool
	// Positional lets the parameter be given without its key, in declaration order among the positionals.
	Positional bool
	// Variadic (on the last positional) collects every remaining bare word, joined by spaces.
	Variadic bool
	Required bool
	// Check validates a single parsed value (a range of sizes, a preset name); its error becomes the message.
	Check func(v Value) error
	// Complete offers values at completion time (model names, presets); Allowed is offered when it is nil.
	Complete func() []string
}

// Spec declares a command: its name, what it does, and its parameters.
type Spec struct {
	Name    string
	Summary string // one line for the command list
	Doc     string // more detail for `help NAME`
	Example string
	Params  []Param
	// AnyKeys accepts key=value pairs it does not declare (`run` passes them to the script as $key).
	AnyKeys bool
}

// Param looks a parameter up by name.
func (s *Spec) Param(name string) *Param {
	for i := range s.Params {
		if s.Params[i].Name == name {
			return &s.Params[i]
		}
	}
	return nil
}

// ParamNames lists the parameter names in declaration order.
func (s *Spec) ParamNames() []string {
	out := make([]string, len(s.Params))
	for i, p := range s.Params {
		out[i] = p.Name
	}
	return out
}

// Usage is the one-line synopsis: `bench [model] [pp=512] [tg=128] ...`.
func (s *Spec) Usage() string {
	parts := []string{s.Name}
	for _, p := range s.Params {
		var w string
		switch {
		case p.Positional && p.Variadic:
			w = strings.ToUpper(p.Name) + "..."
		case p.Positional:
			w = strings.ToUpper(p.Name)
		case len(p.Allowed) > 0 && len(p.Allowed) <= 4:
			w = p.Name + "=" + strings.Join(p.Allowed, "|")
		case p.Default != "":
			w = p.Name + "=" + p.Default
		default:
			w = p.Name + "=" + p.Kind.String()
		}
		if !p.Required {
			w = "[" + w + "]"
		}
		parts = append(parts, w)
	}
	if s.AnyKeys {
		parts = append(parts, "[key=value...]")
	}
	return strings.Join(parts, " ")
}

// Call is a statement bound to its Spec: every declared parameter has its values (given or default).
type Call struct {
	Spec   *Spec
	Stmt   *Stmt
	values map[string][]Value
	given  map[string]bool
	order  []string          // names in the order the user wrote them
	Extra  map[string]string // undeclared keys, when the Spec allows them
	pos    map[string]Arg    // where each given parameter was written, for error messages
}

// Bind checks a statement against a spec: unknown parameters, repeated ones, values of the wrong kind, values not
// allowed, lists where one value is expected and missing required parameters are errors naming the token.
func Bind(spec *Spec, st *Stmt) (*Call, error) {
	c := &Call{Spec: spec, Stmt: st, values: map[string][]Value{}, given: map[string]bool{}, Extra: map[string]string{}, pos: map[string]Arg{}}
	var positionals []*Param
	for i := range spec.Params {
		if spec.Params[i].Positional {
			positionals = append(positionals, &spec.Params[i])
		}
	}
	next := 0
	for _, a := range st.Args {
		var p *Param
		if a.Key == "" {
			for next < len(positionals) && c.given[positionals[next].Name] && !positionals[next].Variadic {
				next++
			}
			if next >= len(positionals) {
				hint := ""
				if len(positionals) == 0 {
					hint = "it takes only key=value parameters: " + strings.Join(spec.ParamNames(), ", ")
				} else {
					hint = "usage: " + spec.Usage()
				}
				if a.Quoted {
					return nil, &Error{Pos: a.Pos, End: a.End, Msg: fmt.Sprintf("unexpected argument \"%s\" for %s", a.Value, spec.Name), Hint: hint}
				}
				return nil, &Error{Pos: a.Pos, End: a.End, Msg: fmt.Sprintf("unexpected argument '%s' for %s", a.Value, spec.Name), Hint: hint}
			}
			p = positionals[next]
			if p.Variadic && c.given[p.Name] {
				prev := c.values[p.Name][0]
				c.values[p.Name] = []Value{{Text: prev.Text + " " + a.Value, V: prev.Text + " " + a.Value}}
				continue
			}
		} else {
			p = spec.Param(a.Key)
			if p == nil {
				if spec.AnyKeys {
					c.Extra[a.Key] = a.Value
					continue
				}
				e := &Error{Pos: a.KeyPos, End: a.Pos - 1, Msg: fmt.Sprintf("unknown parameter '%s' for %s", a.Key, spec.Name)}
				if s := Nearest(a.Key, spec.ParamNames()); s != "" {
					e.Hint = fmt.Sprintf("did you mean '%s'?", s)
				} else if len(spec.Params) > 0 {
					e.Hint = "its parameters are " + strings.Join(spec.ParamNames(), ", ")
				} else {
					e.Hint = spec.Name + " takes no parameters"
				}
				return nil, e
			}
			if c.given[p.Name] {
				return nil, &Error{Pos: a.KeyPos, End: a.End, Msg: fmt.Sprintf("parameter '%s' is given twice", p.Name), Hint: "give a list instead: " + p.Name + "=a,b"}
			}
		}
		vals, err := p.parse(a)
		if err != nil {
			return nil, err
		}
		c.values[p.Name] = vals
		c.given[p.Name] = true
		c.order = append(c.order, p.Name)
		c.pos[p.Name] = a
	}
	for i := range spec.Params {
		p := &spec.Params[i]
		if c.given[p.Name] {
			continue
		}
		if p.Required {
			return nil, &Error{Pos: st.NamePos, End: st.End, Msg: fmt.Sprintf("%s needs %s", spec.Name, describeMissing(p)), Hint: "usage: " + spec.Usage()}
		}
		if p.Default != "" {
			vals, err := p.parse(Arg{Key: p.Name, Value: p.Default})
			if err != nil {
				return nil, fmt.Errorf("default of %s.%s: %w", spec.Name, p.Name, err)
			}
			c.values[p.Name] = vals
		}
	}
	return c, nil
}

func describeMissing(p *Param) string {
	if p.Positional {
		return strings.ToUpper(p.Name) + " (" + p.Doc + ")"
	}
	return p.Name + "=" + p.Kind.String() + " (" + p.Doc + ")"
}

func (p *Param) parse(a Arg) ([]Value, error) {
	fail := func(msg, hint string) error {
		return &Error{Pos: a.Pos, End: a.End, Msg: msg, Hint: hint}
	}
	vals, err := ParseValues(p.Kind, a.Value, a.Quoted)
	if err != nil {
		return nil, fail(fmt.Sprintf("bad value for %s: %v", p.Name, err), p.hint())
	}
	if len(vals) > 1 && !p.List {
		return nil, fail(fmt.Sprintf("%s takes one value, not the list '%s'", p.Name, a.Value), "")
	}
	for _, v := range vals {
		if p.Kind == Enum && !contains(p.Allowed, v.Text) {
			msg := fmt.Sprintf("bad value '%s' for %s", v.Text, p.Name)
			if s := Nearest(v.Text, p.Allowed); s != "" {
				return nil, fail(msg, fmt.Sprintf("did you mean '%s'? (allowed: %s)", s, strings.Join(p.Allowed, ", ")))
			}
			return nil, fail(msg, "allowed: "+strings.Join(p.Allowed, ", "))
		}
		if p.Check != nil {
			if err := p.Check(v); err != nil {
				return nil, fail(fmt.Sprintf("bad value '%s' for %s: %v", v.Text, p.Name, err), "")
			}
		}
	}
	return vals, nil
}

func (p *Param) hint() string {
	switch p.Kind {
	case Int:
		if p.List {
			return "e.g. " + p.Name + "=512, " + p.Name + "=1,16,128 or " + p.Name + "=32..512+32"
		}
		return "e.g. " + p.Name + "=512 or " + p.Name + "=4k"
	case Bool:
		return "write " + p.Name + "=on or " + p.Name + "=off"
	case Enum:
		return "allowed: " + strings.Join(p.Allowed, ", ")
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Has reports whether the user gave the parameter (rather than it taking its default).
func (c *Call) Has(name string) bool { return c.given[name] }

// Values returns every value of a parameter (given or default); nil when it has neither.
func (c *Call) Values(name string) []Value {
	c.mustDeclare(name)
	return c.values[name]
}

// Set replaces a parameter's values, as when a session default fills in what the user left out.
func (c *Call) Set(name string, vals ...Value) {
	c.mustDeclare(name)
	c.values[name] = vals
}

// Where returns the argument that gave the parameter, so commands can point errors at it; ok is false for a
// default.
func (c *Call) Where(name string) (Arg, bool) {
	a, ok := c.pos[name]
	return a, ok
}

// mustDeclare panics on a parameter the spec does not declare: that is a programming error in a command, which
// the command's own tests catch, never a user error.
func (c *Call) mustDeclare(name string) {
	if c.Spec.Param(name) == nil {
		panic(fmt.Sprintf("lang: command %s reads undeclared parameter %q", c.Spec.Name, name))
	}
}

func (c *Call) first(name string) (any, bool) {
	vs := c.Values(name)
	if len(vs) == 0 {
		return nil, false
	}
	return vs[0].V, true
}

// Str returns the parameter's (first) value as text, or "".
func (c *Call) Str(name string) string {
	vs := c.Values(name)
	if len(vs) == 0 {
		return ""
	}
	return vs[0].Text
}

// Strs returns every value as text.
func (c *Call) Strs(name string) []string {
	var out []string
	for _, v := range c.Values(name) {
		out = append(out, v.Text)
	}
	return out
}

// Int returns the (first) value of an Int parameter, or 0.
func (c *Call) Int(name string) int {
	v, _ := c.first(name)
	n, _ := v.(int)
	return n
}

// Ints returns every value of an Int parameter.
func (c *Call) Ints(name string) []int {
	var out []int
	for _, v := range c.Values(name) {
		if n, ok := v.V.(int); ok {
			out = append(out, n)
		}
	}
	return out
}

// Float returns the (first) value of a Float parameter, or 0.
func (c *Call) Float(name string) float64 {
	v, _ := c.first(name)
	f, _ := v.(float64)
	return f
}

// Bool returns the (first) value of a Bool parameter, or false.
func (c *Call) Bool(name string) bool {
	v, _ := c.first(name)
	b, _ := v.(bool)
	return b
}

// Duration returns the (first) value of a Duration parameter, or 0.
func (c *Call) Duration(name string) time.Duration {
	v, _ := c.first(name)
	d, _ := v.(time.Duration)
	return d
}

// Point is one combination of a sweep: a value for each swept parameter.
type Point map[string]Value

// Sweep returns every combination of the named parameters' values, like llama-bench: the parameter written first
// on the line varies slowest, values in the order given; parameters left to their defaults vary slowest of all, in
// the order named here. A parameter with no value is left out of the points.
func (c *Call) Sweep(names ...string) []Point {
	ordered := make([]string, 0, len(names))
	for _, n := range names {
		c.mustDeclare(n)
		if !c.given[n] && len(c.values[n]) > 0 {
			ordered = append(ordered, n)
		}
	}
	for _, n := range c.order {
		if contains(names, n) {
			ordered = append(ordered, n)
		}
	}
	points := []Point{{}}
	for _, n := range ordered {
		vals := c.values[n]
		next := make([]Point, 0, len(points)*len(vals))
		for _, p := range points {
			for _, v := range vals {
				q := make(Point, len(p)+1)
				for k, x := range p {
					q[k] = x
				}
				q[n] = v
				next = append(next, q)
			}
		}
		points = next
	}
	return points
}

// Nearest returns the candidate closest to word by edit distance when it is close enough to be a likely typo;
// failing that, the one candidate that abbreviates word or that word abbreviates (their letters in order:
// "attn" for "attention", "pla" for "placement"); else "".
func Nearest(word string, candidates []string) string {
	best, bestD := "", len(word)/3+2
	for _, c := range candidates {
		d := EditDistance(word, c)
		if d < bestD || d == bestD && best != "" && c < best {
			best, bestD = c, d
		}
	}
	if best != "" {
		return best
	}
	var abbr []string
	for _, c := range candidates {
		if len(word) >= 2 && len(c) >= 2 && (subsequence(word, c) || subsequence(c, word)) {
			abbr = append(abbr, c)
		}
	}
	if len(abbr) == 1 {
		return abbr[0]
	}
	return ""
}

// subsequence reports whether the letters of short appear in long in order, starting with the same letter.
func subsequence(short, long string) bool {
	if len(short) > len(long) || short[0] != long[0] {
		return false
	}
	i := 0
	for j := 0; j < len(long) && i < len(short); j++ {
		if long[j] == short[i] {
			i++
		}
	}
	return i == len(short)
}

// EditDistance is the Levenshtein distance between a and b, counting bytes.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// SortedNames returns the names of specs sorted, for listings and suggestions.
func SortedNames(specs map[string]*Spec) []string {
	out := make([]string, 0, len(specs))
	for n := range specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
