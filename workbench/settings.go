package workbench

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"tilelab/workbench/lang"
)

// settings are the session defaults `set` changes and commands fall back on.
type settings struct {
	Threads int
	Reps    int
	Warmup  int
	Seed    int
	Tile    string // AMX tile configuration, "" for the kernels' default
	Format  string // auto (every MIME type), text, markdown
	Out     string // folder `save` writes relative names into
	Dir     string // folder relative paths (models, scripts, vocabularies) resolve against
}

func defaultSettings(o Options) settings {
	return settings{Threads: o.Threads, Reps: 5, Warmup: 1, Seed: 42, Format: "auto", Out: o.Dir, Dir: o.Dir}
}

func atLeast(n int) func(lang.Value) error {
	return func(v lang.Value) error {
		if v.V.(int) < n {
			return fmt.Errorf("must be at least %d", n)
		}
		return nil
	}
}

func between(lo, hi int) func(lang.Value) error {
	return func(v lang.Value) error {
		if x := v.V.(int); x < lo || x > hi {
			return fmt.Errorf("must be between %d and %d", lo, hi)
		}
		return nil
	}
}

// settingParams declares the settings; `set` takes them as parameters and `get` as names.
var settingParams = []lang.Param{
	{Name: "threads", Kind: lang.Int, Doc: "worker threads for the CPU backend", Check: between(1, 4096)},
	{Name: "reps", Kind: lang.Int, Doc: "timed repetitions per measurement", Check: between(1, 1000)},
	{Name: "warmup", Kind: lang.Int, Doc: "untimed runs before the timed ones", Check: between(0, 100)},
	{Name: "seed", Kind: lang.Int, Doc: "random seed for synthetic data and sampling"},
	{Name: "tile", Kind: lang.String, Doc: "AMX tile configuration for matmul and the AMX kernels (as `tiles` offers it), or default"},
	{Name: "format", Kind: lang.Enum, Allowed: []string{"auto", "text", "markdown"}, Doc: "how tables show: auto (text, HTML and JSON), text only, or markdown"},
	{Name: "out", Kind: lang.Path, Doc: "folder relative save paths go into"},
	{Name: "dir", Kind: lang.Path, Doc: "folder relative paths (models, scripts) resolve against; a notebook can set dir=.. to work from the repository root"},
}

func settingNames() []string {
	out := make([]string, len(settingParams))
	for i, p := range settingParams {
		out[i] = p.Name
	}
	return out
}

// apply sets one setting from a bound value.
func (st *settings) apply(name string, v lang.Value) {
	switch name {
	case "threads":
		st.Threads = v.V.(int)
	case "reps":
		st.Reps = v.V.(int)
	case "warmup":
		st.Warmup = v.V.(int)
	case "seed":
		st.Seed = v.V.(int)
	case "tile":
		st.Tile = v.Text
		if st.Tile == "default" {
			st.Tile = ""
		}
	case "format":
		st.Format = v.Text
	case "out":
		st.Out = v.Text
	case "dir":
		st.Dir = v.Text
	}
}

// get returns one setting as text and as a typed value.
func (st *settings) get(name string) (string, any, error) {
	switch name {
	case "threads":
		return strconv.Itoa(st.Threads), st.Threads, nil
	case "reps":
		return strconv.Itoa(st.Reps), st.Reps, nil
	case "warmup":
		return strconv.Itoa(st.Warmup), st.Warmup, nil
	case "seed":
		return strconv.Itoa(st.Seed), st.Seed, nil
	case "tile":
		if st.Tile == "" {
			return "default", "default", nil
		}
		return st.Tile, st.Tile, nil
	case "format":
		return st.Format, st.Format, nil
	case "out":
		return st.Out, st.Out, nil
	case "dir":
		return st.Dir, st.Dir, nil
	}
	return "", nil, errors.New("no setting " + name)
}

func (st *settings) asMap() map[string]any {
	m := map[string]any{}
	for _, n := range settingNames() {
		_, v, _ := st.get(n)
		m[n] = v
	}
	return m
}

func userHome() (string, error) { return os.UserHomeDir() }
