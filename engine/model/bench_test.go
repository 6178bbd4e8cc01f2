package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"tilelab/engine/gguf"
	"tilelab/engine/placement"
	"tilelab/engine/profile"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
)

// benchModel writes (once per process) and loads the synthetic model named by $TILELAB_BENCH_PRESET (default
// tiny-moe), in $TILELAB_BENCH_QUANT (default q4_0), with $TILELAB_BENCH_LAYERS layers (default the preset's).
// The file goes to $TILELAB_BENCH_DIR, or a temporary folder.
func benchModel(b *testing.B, o Options) (*Model, func()) {
	b.Helper()
	preset := envOr("TILELAB_BENCH_PRESET", "tiny-moe")
	q, err := tensor.ParseDType(envOr("TILELAB_BENCH_QUANT", "q4_0"))
	if err != nil {
		b.Fatal(err)
	}
	layers, _ := strconv.Atoi(os.Getenv("TILELAB_BENCH_LAYERS"))
	dir := os.Getenv("TILELAB_BENCH_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("tilelab-bench-%s-%s-%d.gguf", preset, q, layers))
	if _, err := os.Stat(path); err != nil {
		if err := synth.WriteFile(path, preset, synth.Options{Quant: q, Layers: layers, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	f, err := gguf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	m, err := Load(f, o)
	if err != nil {
		f.Close()
		b.Fatal(err)
	}
	return m, func() { m.Close(); f.Close() }
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randomTokens(n, vocab int) []int32 {
	rng := rand.New(rand.NewPCG(1, 2))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(rng.IntN(vocab))
	}
	return t
}

// benchProfile is a per-op profile when $TILELAB_BENCH_PROFILE is set, logged by op when the benchmark ends.
func benchProfile(b *testing.B) *profile.Recorder {
	if os.Getenv("TILELAB_BENCH_PROFILE") == "" {
		return nil
	}
	return &profile.Recorder{}
}

func logProfile(b *testing.B, rec *profile.Recorder, wall time.Duration) {
	if rec == nil {
		return
	}
	rows, err := rec.Summary(profile.Key("op"))
	if err != nil {
		b.Fatal(err)
	}
	var sb stringsBuilder
	if err := profile.WriteTable(&sb, rows, profile.Key("op")); err != nil {
		b.Fatal(err)
	}
	// The same by op name with the layer left out, the ten costliest: which projection is slow.
	byName := map[string]time.Duration{}
	calls := map[string]int{}
	for _, r := range rec.Records {
		n := r.Name
		if rest, ok := strings.CutPrefix(n, "blk."); ok {
			if _, after, ok := strings.Cut(rest, "."); ok {
				n = after
			}
		}
		byName[n] += r.Time
		calls[n]++
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return byName[names[i]] > byName[names[j]] })
	for i, n := range names[:min(10, len(names))] {
		sb.s += fmt.Sprintf("%2d. %-22s %6d calls %9.3f ms %8.1f µs/call\n", i+1, n, calls[n], float64(byName[n].Microseconds())/1000,
			float64(byName[n].Nanoseconds())/1000/float64(calls[n]))
	}
	b.Logf("%s\n%s", rec.Account(wall), sb.s)
}

type stringsBuilder struct{ s string }

func (w *stringsBuilder) Write(p []byte) (int, error) { w.s += string(p); return len(p), nil }

// BenchmarkPrompt evaluates a prompt of $TILELAB_BENCH_PP tokens (default 512) into an empty cache, llama-bench's
// ppN; it reports tokens per second.
func BenchmarkPrompt(b *testing.B) {
	n, _ := strconv.Atoi(envOr("TILELAB_BENCH_PP", "512"))
	rec := benchProfile(b)
	m, done := benchModel(b, Options{Ctx: n + 8, Batch: n, Profile: rec, Placement: benchPlacement()})
	defer done()
	tokens := randomTokens(n, m.Hyper.Vocab)
	ctx := context.Background()
	if _, err := m.Eval(ctx, tokens); err != nil { // warm the arena and the page cache
		b.Fatal(err)
	}
	rec.Reset()
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		m.Reset()
		if _, err := m.Eval(ctx, tokens); err != nil {
			b.Fatal(err)
		}
	}
	wall := time.Since(t0)
	b.ReportMetric(float64(n*b.N)/wall.Seconds(), "tok/s")
	logProfile(b, rec, wall)
}

// BenchmarkDecode generates $TILELAB_BENCH_TG tokens (default 128) one at a time after a one-token prompt,
// llama-bench's tgN; it reports tokens per second.
func BenchmarkDecode(b *testing.B) {
	n, _ := strconv.Atoi(envOr("TILELAB_BENCH_TG", "128"))
	rec := benchProfile(b)
	m, done := benchModel(b, Options{Ctx: n + 8, Profile: rec, Placement: benchPlacement()})
	defer done()
	ctx := context.Background()
	tok := []int32{1}
	run := func() {
		m.Reset()
		for j := 0; j < n; j++ {
			if _, err := m.Eval(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	}
	run()
	rec.Reset()
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		run()
	}
	wall := time.Since(t0)
	b.ReportMetric(float64(n*b.N)/wall.Seconds(), "tok/s")
	logProfile(b, rec, wall)
}

// benchPlacement reads $TILELAB_BENCH_AMX (off, attn, all).
func benchPlacement() placement.Options {
	return placement.Options{AMX: os.Getenv("TILELAB_BENCH_AMX")}
}
