package workbench

import (
	"errors"
	"testing"

	"tilelab/workbench/lang"
)

// FuzzFrontEnd feeds arbitrary cells to everything that reads code without running it: parsing, binding to every
// command's declaration, completion, inspection and is_complete. None may panic, and every error must be a located
// *lang.Error. (Executing fuzzed cells is left out on purpose: a random cell may be a valid `synth ... out=`.)
func FuzzFrontEnd(f *testing.F) {
	for _, s := range []string{"bench moe pp=1..512*2 tg=1,2 mode=cpu,cpu+amx", "load synth:tiny-moe \\\n amx=all", `print "a \"b\""`,
		"?plan", "tiles acc=2x2,1x4 rows=8..16+8", "run x.tlab a=$b", "set tile=\"16x64 2x2\"", "# c", "get"} {
		f.Add(s, 3)
	}
	s := New(Options{Dir: f.TempDir(), CacheDir: f.TempDir()})
	f.Fuzz(func(t *testing.T, code string, cursor int) {
		s.IsComplete(code)
		if cursor < 0 {
			cursor = -cursor
		}
		if len(code) > 0 {
			cursor %= len(code) + 1
		} else {
			cursor = 0
		}
		m, start, end := s.Complete(code, cursor)
		if start < 0 || end > len(code) || start > end {
			t.Fatalf("Complete(%q, %d) = %q [%d,%d)", code, cursor, m, start, end)
		}
		s.Inspect(code, cursor, 0)
		stmts, err := lang.Parse(code)
		if err != nil {
			return
		}
		for _, st := range stmts {
			cmd, ok := s.cmds[st.Name]
			if !ok {
				continue
			}
			if _, err := lang.Bind(cmd.spec, st); err != nil {
				var le *lang.Error
				if !errors.As(err, &le) || le.Pos < 0 || le.End > len(code) || le.Pos > le.End {
					t.Fatalf("Bind(%q): %v (%T)", code, err, err)
				}
			}
		}
	})
}
