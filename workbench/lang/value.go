package lang

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the type of a parameter's values.
type Kind int

// The kinds of values. Enum values must be one of the parameter's Allowed words; Path and Source are strings that
// completion treats as file names (Source also offers `synth:PRESET`).
const (
	String Kind = iota
	Int
	Float
	Duration
	Bool
	Enum
	Path
	Source
)

var kindNames = [...]string{"string", "int", "float", "duration", "on|off", "enum", "path", "source"}

// String names the kind as help shows it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Value is one parsed value with the text it came from.
type Value struct {
	Text string
	V    any // string, int, float64, time.Duration or bool, by the parameter's Kind
}

// String is the value as the user wrote it.
func (v Value) String() string { return v.Text }

// maxExpand bounds how many values one list or range may produce, so a typo such as `m=1..1000000` is an error
// rather than an afternoon of work.
const maxExpand = 4096

// ParseInt reads an integer with an optional binary suffix: k or K (×1024), M (×1024²), G (×1024³).
func ParseInt(s string) (int, error) {
	mult := int64(1)
	t := s
	if n := len(t); n > 1 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("'%s' is not an integer (write 512, 4k or 1M)", s)
	}
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return 0, fmt.Errorf("'%s' is too large", s)
	}
	return int(n * mult), nil
}

// ParseBool reads on/off (and true/false, yes/no, 1/0, which people type anyway).
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("'%s' is not on or off", s)
}

// parseOne reads a single value of kind k.
func parseOne(k Kind, s string) (any, error) {
	switch k {
	case Int:
		return ParseInt(s)
	case Float:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("'%s' is not a number", s)
		}
		return f, nil
	case Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("'%s' is not a duration (write 500ms, 2s or 1m)", s)
		}
		return d, nil
	case Bool:
		return ParseBool(s)
	}
	return s, nil
}

// ParseValues reads the text of one argument as a list of values of kind k. Unless quoted, a comma separates
// list items and an integer item may be a range: `a..b` (step 1), `a..b+s` (arithmetic) or `a..b*f` (geometric);
// a range includes b when the steps land on it. A quoted value is always a single literal.
func ParseValues(k Kind, text string, quoted bool) ([]Value, error) {
	if quoted {
		v, err := parseOne(k, text)
		if err != nil {
			return nil, err
		}
		return []Value{{Text: text, V: v}}, nil
	}
	var out []Value
	for _, item := range strings.Split(text, ",") {
		if item == "" {
			return nil, fmt.Errorf("empty item in the list '%s'", text)
		}
		if k == Int && strings.Contains(item, "..") {
			r, err := parseRange(item)
			if err != nil {
				return nil, err
			}
			out = append(out, r...)
		} else {
			v, err := parseOne(k, item)
			if err != nil {
				return nil, err
			}
			out = append(out, Value{Text: item, V: v})
		}
		if len(out) > maxExpand {
			return nil, fmt.Errorf("'%s' expands to more than %d values", text, maxExpand)
		}
	}
	return out, nil
}

func parseRange(s string) ([]Value, error) {
	from, rest, _ := strings.Cut(s, "..")
	op, step := byte('+'), "1"
	if i := strings.IndexAny(rest, "+*"); i >= 0 {
		op, step, rest = rest[i], rest[i+1:], rest[:i]
	}
	a, err := ParseInt(from)
	if err != nil {
		return nil, fmt.Errorf("range '%s': start %v", s, err)
	}
	b, err := ParseInt(rest)
	if err != nil {
		return nil, fmt.Errorf("range '%s': end %v", s, err)
	}
	st, err := ParseInt(step)
	if err != nil {
		return nil, fmt.Errorf("range '%s': step %v", s, err)
	}
	if a > b {
		return nil, fmt.Errorf("range '%s' starts after it ends", s)
	}
	var out []Value
	add := func(n int) error {
		out = append(out, Value{Text: strconv.Itoa(n), V: n})
		if len(out) > maxExpand {
			return fmt.Errorf("range '%s' has more than %d values", s, maxExpand)
		}
		return nil
	}
	switch op {
	case '+':
		if st <= 0 {
			return nil, fmt.Errorf("range '%s' needs a positive step after '+'", s)
		}
		for n := a; n <= b; n += st {
			if err := add(n); err != nil {
				return nil, err
			}
			if n > math.MaxInt-st {
				break
			}
		}
	case '*':
		if st < 2 || a <= 0 {
			return nil, fmt.Errorf("range '%s' needs a positive start and a factor of at least 2 after '*'", s)
		}
		for n := a; n <= b; n *= st {
			if err := add(n); err != nil {
				return nil, err
			}
			if n > math.MaxInt/st {
				break
			}
		}
	}
	return out, nil
}
