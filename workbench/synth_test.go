package workbench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSynthWritesAFile(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "synth tiny-dense quant=q8_0 out=models/td.gguf")
	st, err := os.Stat(filepath.Join(s.opts.Dir, "models", "td.gguf"))
	if err != nil || st.Size() < 1000 {
		t.Fatalf("synth wrote %v, %v", st, err)
	}
	mustExec(t, s, "load models/td.gguf")
	if row := s.Last().Tables[0].Rows[0]; row[0] != "td" || row[4] != "q8_0" {
		t.Errorf("loaded %v", row)
	}
}

func TestLoadSynthReusesTheCache(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "load synth:tiny-dense")
	files, _ := filepath.Glob(filepath.Join(s.opts.CacheDir, "synth", "*.gguf"))
	if len(files) != 1 {
		t.Fatalf("cache holds %v", files)
	}
	before, _ := os.Stat(files[0])
	time.Sleep(10 * time.Millisecond)
	mustExec(t, s, "load synth:tiny-dense as=again")
	after, _ := os.Stat(files[0])
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("the cached model was written again")
	}
	mustExec(t, s, "load synth:tiny-dense quant=q8_0 as=q8")
	files, _ = filepath.Glob(filepath.Join(s.opts.CacheDir, "synth", "*.gguf"))
	if len(files) != 2 {
		t.Errorf("a different quant must be a different cached file: %v", files)
	}
}

func TestPlanSynthReadsNoWeights(t *testing.T) {
	s := newSession(t)
	start := time.Now()
	mustExec(t, s, "plan synth:qwen3-30b-a3b quant=q4_0 amx=attn ngl=0,12")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("planning a 30B model took %v", d)
	}
	var amx0 float64
	for _, row := range s.Last().Tables[0].Rows {
		if row[0] == "q4_0 amx=attn ngl=0" && row[1] == "AMX" {
			amx0 = row[3].(float64)
		}
	}
	// The seed's table: the 192 attention projections of the 48 layers hold 486 MiB of Q4_0.
	if amx0 < 485 || amx0 > 487 {
		t.Errorf("AMX at ngl=0 holds %.1f MiB, want the seed's 486", amx0)
	}
	if files, _ := filepath.Glob(filepath.Join(s.opts.CacheDir, "*", "*")); len(files) != 0 {
		t.Errorf("plan wrote %v", files)
	}
}

func TestSynthErrors(t *testing.T) {
	tests := []struct{ name, code, want string }{
		{"a misspelt preset gets a suggestion", "load synth:tiny-mo", "did you mean 'synth:tiny-moe'?"},
		{"a misspelt preset in plan too", "plan synth:qwen3-8 amx=off", "did you mean 'synth:qwen3-8b'?"},
		{"synth needs out=", "synth tiny-moe", "synth needs out="},
		{"a missing vocab file is named", "synth tiny-moe vocab=nope.gguf out=x.gguf", "cannot read vocab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exec(t, newSession(t), tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSynthInterruptedLeavesNoFile(t *testing.T) {
	s := newSession(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.run(ctx, mustStmt(t, "synth tiny-moe out=m.gguf"), "synth tiny-moe out=m.gguf", &recorder{}, &scope{vars: s.vars})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if m, _ := filepath.Glob(filepath.Join(s.opts.Dir, "m.gguf*")); len(m) != 0 {
		t.Errorf("an interrupted synth left %v", m)
	}
}

func TestSessionsSharingACacheGenerateOneModelSafely(t *testing.T) {
	cache := t.TempDir()
	const n = 4
	errs := make(chan error, n)
	for range n {
		s := New(Options{Version: "test", Threads: 1, Dir: t.TempDir(), CacheDir: cache})
		go func() {
			_, err := exec(t, s, "load synth:tiny-moe quant=q8_0\ncheck mode=cpu")
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a session sharing the cache failed: %v", err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(cache, "synth", "*"))
	if len(files) != 1 || !strings.HasSuffix(files[0], ".gguf") {
		t.Errorf("cache holds %v, want one finished model and no temporary files", files)
	}
	if st, err := os.Stat(files[0]); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("cached model: %v, %v; want mode 0644", st, err)
	}
}
