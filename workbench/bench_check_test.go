package workbench

import (
	"math"
	"strings"
	"testing"

	"tilelab/amx"
	"tilelab/engine/bench"
	"tilelab/workbench/result"
)

func TestBench(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "load synth:tiny-dense as=d threads=2\nset reps=2 warmup=0")
	r := mustExec(t, s, "bench pp=8 tg=2 mode=cpu,cpu+amx,cpu+gpu")
	last := s.Last()
	rows := last.Tables[0].Rows
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 3 modes × 2 tests", len(rows))
	}
	for _, row := range rows {
		mode, speed, note := row[0].(string), row[5], row[8].(string)
		switch {
		case mode == "cpu":
			m, ok := speed.(result.Measure)
			if !ok || m.N != 2 || m.Mean <= 0 || len(m.Raw) != 2 {
				t.Errorf("cpu %s: speed %v", row[4], speed)
			}
		case mode == "cpu+amx" && amx.Detect().Usable:
		default:
			if speed != nil || note == "" {
				t.Errorf("%s %s: timed %v, or no reason (%q)", mode, row[4], speed, note)
			}
		}
	}
	if len(last.Charts) != 1 || len(last.Charts[0].Series) != 2 {
		t.Errorf("bench chart %+v", last.Charts)
	}
	if !strings.Contains(strings.Join(r.events, " "), "update tilelab-") {
		t.Error("bench showed no progress updates")
	}
	if _, err := exec(t, s, "bench pp=0 tg=0"); err == nil || !strings.Contains(err.Error(), "nothing to measure") {
		t.Errorf("pp=0 tg=0: err = %v", err)
	}
}

func TestCheckAgainstReference(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "load synth:tiny-dense as=d threads=2 amx=attn")
	mustExec(t, s, `check d prompt="Once upon a time" mode=cpu,cpu+amx,cpu+gpu`)
	rows := s.Last().Tables[0].Rows
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, row := range rows[:2] {
		if note, _ := row[10].(string); strings.HasPrefix(note, "failed") {
			t.Errorf("%s: %s", row[0], note)
			continue
		}
		cos, _ := row[7].(float64)
		if row[3] != 0 || cos < 0.999 || row[8] != "agrees" {
			t.Errorf("%s: NaN ops %v, cosine %v, top-1 %v", row[0], row[3], row[7], row[8])
		}
	}
	if rows[2][5] != nil || !strings.Contains(rows[2][10].(string), "GPU") {
		t.Errorf("cpu+gpu row %v: want a reason, no numbers", rows[2])
	}
}

func TestLogitErrors(t *testing.T) {
	want := []float32{1, 2, 3, 4}
	maxAbs, rel, cos, top1, kl := logitErrors(want, want)
	if maxAbs != 0 || rel != 0 || math.Abs(cos-1) > 1e-12 || !top1 || kl > 1e-12 {
		t.Errorf("identical logits: %v %v %v %v %v", maxAbs, rel, cos, top1, kl)
	}
	got := []float32{1, 2, 5, 4}
	maxAbs, _, cos, top1, kl = logitErrors(got, want)
	if maxAbs != 2 || top1 || kl <= 0 || cos >= 1 {
		t.Errorf("different argmax: %v %v %v %v", maxAbs, cos, top1, kl)
	}
}

func TestNaNScan(t *testing.T) {
	s := &nanScan{}
	s.check(opWithOutput("ok", []float32{1, 2}))
	s.check(opWithOutput("bad", []float32{1, float32(math.NaN())}))
	s.check(opWithOutput("inf", []float32{float32(math.Inf(1))}))
	if s.ops != 3 || s.bad != 2 || len(s.first) != 2 || !strings.Contains(s.first[0], "bad") {
		t.Errorf("scan %+v", s)
	}
}

func TestBenchTableNamesKernelsAndRepsOnlyForRowsThatRan(t *testing.T) {
	res := &bench.Result{Rows: []bench.Row{
		{Mode: bench.CPU, Threads: 2, Test: "pp8", Kernel: "avx512-vnni", Samples: []int64{1e6}, SamplesT: []float64{8000}},
		{Mode: bench.CPUAMX, AMX: "all", Threads: 2, Test: "pp8", Kernel: "avx512-vnni", Skipped: "no AMX here"},
		{Mode: bench.CPUGPU, NGL: 1, Threads: 2, Test: "pp8", Kernel: "avx512-vnni", Skipped: "no GPU"},
		{Mode: bench.CPU, Threads: 2, Test: "tg4", Kernel: "avx512-vnni", Partial: true},
	}}
	tab, _ := benchTables("m", res)
	want := []string{"avx512-vnni", "", "", ""}
	wantReps := []any{1, nil, nil, nil}
	names := []string{"a measured row names its kernels and repetitions", "an AMX row that was skipped names neither", "a GPU row that was skipped names neither", "a row interrupted before its first repetition names neither"}
	for i, row := range tab.Rows {
		t.Run(names[i], func(t *testing.T) {
			if got := row[7]; got != want[i] {
				t.Errorf("kernels = %q, want %q", got, want[i])
			}
			if got := row[6]; got != wantReps[i] {
				t.Errorf("reps = %v, want %v (empty, not 0, where nothing ran)", got, wantReps[i])
			}
		})
	}
}
