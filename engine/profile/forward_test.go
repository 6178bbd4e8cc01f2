package profile_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"tilelab/engine/gguf"
	"tilelab/engine/model"
	"tilelab/engine/profile"
	testdataset "tilelab/internal/testdata"
)

// promptTokens is "Once upon a time" in the Qwen3 vocabulary, as the shared reference data records it.
var promptTokens = []int32{12522, 5193, 264, 882}

func loadTiny(tb testing.TB, rec *profile.Recorder) *model.Model {
	tb.Helper()
	f, err := gguf.Open(testdataset.Path(tb, "models", "tiny-qwen3moe-q4_0.gguf"))
	if err != nil {
		tb.Fatalf("the tiny model is part of the shared test data: %v", err)
	}
	m, err := model.Load(f, model.Options{Profile: rec, Threads: 2, Ctx: 64})
	if err != nil {
		f.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(); f.Close() })
	return m
}

// The profile of a forward pass lists every op the scheduler ran, each with its backend and kernel.
func TestProfileListsEveryOpOfAForwardPass(t *testing.T) {
	rec := &profile.Recorder{}
	m := loadTiny(t, rec)
	m.Sched.Trace = true
	if _, err := m.Eval(context.Background(), promptTokens); err != nil {
		t.Fatal(err)
	}
	if len(rec.Records) == 0 || len(rec.Records) != len(m.Sched.Assignments) {
		t.Fatalf("%d records for %d scheduled ops", len(rec.Records), len(m.Sched.Assignments))
	}
	for i, r := range rec.Records {
		a := m.Sched.Assignments[i]
		if r.Op != a.Op.Kind.String() || r.Backend != a.Backend || r.Kernel == "" || r.Time < 0 {
			t.Errorf("record %d %+v does not describe op %s on %s", i, r, a.Op.Kind, a.Backend)
		}
	}
	rows, err := rec.Summary(profile.ByOp, profile.ByBackend)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, r := range rows {
		calls += r.Calls
	}
	if calls != len(rec.Records) {
		t.Errorf("summary counts %d calls of %d records", calls, len(rec.Records))
	}
}

// BenchmarkForwardPassAccounting shows that a forward pass's profile accounts for its wall time: op times plus the
// recorded overhead (graph building, scheduling) within 10% of the time measured around Eval, for a prompt and for
// one decoded token. It reports the fraction as %accounted (and ops alone as %ops); run with -v to see the
// per-op table.
//
//	go test -run X -bench ForwardPassAccounting -benchtime 20x ./engine/profile
func BenchmarkForwardPassAccounting(b *testing.B) {
	for _, phase := range []struct {
		name   string
		tokens []int32
	}{{"prompt4", promptTokens}, {"decode1", promptTokens[:1]}} {
		b.Run(phase.name, func(b *testing.B) {
			rec := &profile.Recorder{}
			m := loadTiny(b, rec)
			ctx := context.Background()
			var wall time.Duration
			var ops, overhead time.Duration
			n := 0
			for b.Loop() {
				m.Reset()
				if phase.name == "decode1" { // decode after a cached prompt, as generation does
					if _, err := m.Eval(ctx, promptTokens); err != nil {
						b.Fatal(err)
					}
				}
				rec.Reset()
				t0 := time.Now()
				if _, err := m.Eval(ctx, phase.tokens); err != nil {
					b.Fatal(err)
				}
				wall += time.Since(t0)
				ops += rec.OpTime()
				overhead += rec.Overhead
				n++
			}
			acc := profile.Accounting{Ops: ops, Overhead: overhead, Wall: wall}
			b.ReportMetric(100*acc.Covered(), "%accounted")
			b.ReportMetric(100*float64(ops)/float64(wall), "%ops")
			if err := acc.Check(0.10); err != nil {
				b.Error(err)
			}
			if testing.Verbose() {
				rows, _ := rec.Summary(profile.ByOp, profile.ByBackend)
				var sb strings.Builder
				profile.WriteTable(&sb, rows, profile.ByOp, profile.ByBackend)
				b.Logf("%s over %d passes: %s\nlast pass by op:\n%s", phase.name, n, acc, sb.String())
			}
		})
	}
}
