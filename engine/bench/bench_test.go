package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"tilelab/amx"
	"tilelab/engine/backend"
	"tilelab/engine/pool"
	"tilelab/engine/profile"
	"tilelab/engine/tensor"
	testdataset "tilelab/internal/testdata"
)

// tinyModel finds the tiny Qwen3-MoE in the shared test data ($TILELAB_TESTDATA, or ../shared/testdata beside the
// module root).
func tinyModel(t *testing.T) string {
	return testdataset.Path(t, "models", "tiny-qwen3moe-q4_0.gguf")
}

func TestRun(t *testing.T) {
	model := tinyModel(t)
	var heard []Progress
	res, err := Run(context.Background(), Config{Model: model, Prompt: []int{8, 0}, Gen: []int{4}, Reps: 2,
		Threads: []int{1, 2}, Modes: []Mode{CPU, CPUAMX}}, func(p Progress) { heard = append(heard, p) })
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every combination of threads, mode and test is a row, named as llama-bench names it", func(t *testing.T) {
		var got []string
		for _, r := range res.Rows {
			got = append(got, string(r.Mode)+"/"+itoa(r.Threads)+"/"+r.Test)
		}
		want := "cpu/1/pp8 cpu/1/tg4 cpu/2/pp8 cpu/2/tg4 cpu+amx/1/pp8 cpu+amx/1/tg4 cpu+amx/2/pp8 cpu+amx/2/tg4"
		if strings.Join(got, " ") != want {
			t.Fatalf("rows %v, want %s", got, want)
		}
	})
	t.Run("measured rows keep every repetition and their mean", func(t *testing.T) {
		for _, r := range res.Rows[:4] {
			if len(r.Samples) != 2 || len(r.SamplesT) != 2 || r.AvgTs <= 0 || r.Skipped != "" {
				t.Fatalf("%s: samples %v, avg %g, skipped %q", r.Test, r.SamplesT, r.AvgTs, r.Skipped)
			}
			if want := (r.SamplesT[0] + r.SamplesT[1]) / 2; r.AvgTs != want {
				t.Fatalf("%s: mean %g, want %g", r.Test, r.AvgTs, want)
			}
			if r.Ctx != 8 {
				t.Fatalf("%s: KV cache %d, want p+n = 8 (the largest test)", r.Test, r.Ctx)
			}
			if r.TypeK != "f32" || r.TypeV != "f32" {
				t.Fatalf("%s: cache types %q/%q, want f32 by default", r.Test, r.TypeK, r.TypeV)
			}
		}
	})
	t.Run("measured rows name the matrix kernels their own pass ran", func(t *testing.T) {
		for _, r := range res.Rows[:4] {
			if r.Kernel == "" || strings.Contains(r.Kernel, "++") {
				t.Fatalf("%s: kernels %q", r.Test, r.Kernel)
			}
		}
	})
	t.Run("measured rows say how many CPUs the process kept busy", func(t *testing.T) {
		for _, r := range res.Rows[:4] {
			// A little above the thread count is normal (the garbage collector, the runtime); zero would mean the
			// figure was never taken.
			if r.CPUs <= 0 || r.CPUs > float64(r.Threads)+1.5 {
				t.Fatalf("%s with %d threads: %.2f CPUs used", r.Test, r.Threads, r.CPUs)
			}
		}
	})
	t.Run("a mode this build cannot run is a row with the reason, no timings and no kernels", func(t *testing.T) {
		for _, r := range res.Rows[4:] {
			if r.Skipped == "" || len(r.Samples) != 0 || r.Kernel != "" {
				t.Fatalf("%s %s: skipped %q, samples %v", r.Mode, r.Test, r.Skipped, r.Samples)
			}
		}
	})
	t.Run("progress hears the warm-up and every repetition", func(t *testing.T) {
		// 4 measured rows × (warm-up + 2 reps) + 4 skipped rows.
		if len(heard) != 16 {
			t.Fatalf("heard %d reports, want 16", len(heard))
		}
	})
	t.Run("markdown has a header, a rule and a line per row", func(t *testing.T) {
		var b bytes.Buffer
		if err := res.Write(&b, "md"); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(b.String(), "\n")
		if !strings.HasPrefix(lines[0], "| model") || !strings.Contains(lines[1], "---:") || !strings.Contains(lines[2], "pp8") ||
			!strings.Contains(lines[2], " ± ") || !strings.Contains(lines[6], "skipped: no AMX backend") {
			t.Fatalf("table:\n%s", b.String())
		}
	})
	t.Run("JSON round-trips with the raw repetitions", func(t *testing.T) {
		var b bytes.Buffer
		if err := res.Write(&b, "json"); err != nil {
			t.Fatal(err)
		}
		var back Result
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Rows) != len(res.Rows) || back.Rows[1].SamplesT[1] != res.Rows[1].SamplesT[1] || back.Env.CPU == "" {
			t.Fatalf("JSON lost data: %s", b.String())
		}
	})
	t.Run("CSV has llama-bench's columns and one record per row", func(t *testing.T) {
		var b bytes.Buffer
		if err := res.Write(&b, "csv"); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&b).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1+len(res.Rows) || recs[0][19] != "avg_ts" || len(strings.Fields(recs[1][22])) != 2 {
			t.Fatalf("csv: %v", recs[:2])
		}
	})
	t.Run("an unknown format is refused", func(t *testing.T) {
		if err := res.Write(&bytes.Buffer{}, "xml"); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestRunInterrupted(t *testing.T) {
	model := tinyModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Run(ctx, Config{Model: model, Prompt: []int{4}, Reps: 50, Threads: []int{1}}, func(p Progress) {
		if p.Rep == 2 {
			cancel()
		}
	})
	t.Run("a cancelled run returns the repetitions done so far with ctx's error", func(t *testing.T) {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if len(res.Rows) != 1 || !res.Rows[0].Partial || len(res.Rows[0].Samples) != 2 {
			t.Fatalf("rows %+v", res.Rows)
		}
	})
}

func TestSetupDecidesModes(t *testing.T) {
	model := tinyModel(t)
	setup := func(in Instance, _ *backend.Registry, _ *pool.Pool) (string, error) {
		if in.Mode == CPUGPU {
			return "", errors.New("driver exploded")
		}
		return "", nil
	}
	_, err := Run(context.Background(), Config{Model: model, Gen: []int{1}, Reps: 1, Modes: []Mode{CPUGPU}, Setup: setup}, nil)
	t.Run("a setup failure is an error naming the mode", func(t *testing.T) {
		if err == nil || !strings.Contains(err.Error(), "cpu+gpu") || !strings.Contains(err.Error(), "driver exploded") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, want string
		cfg        Config
	}{
		{"no model", "no model", Config{Prompt: []int{1}}},
		{"no tests", "no tests", Config{Model: "x", Prompt: []int{0}, Gen: []int{0}}},
		{"a negative prompt", "prompt size -1", Config{Model: "x", Prompt: []int{-1}}},
		{"zero threads", "thread count 0", Config{Model: "x", Prompt: []int{1}, Threads: []int{0}}},
		{"a bad AMX policy", `amx policy "some"`, Config{Model: "x", Prompt: []int{1}, AMX: "some"}},
		{"a missing file", "no such file", Config{Model: "/nonexistent.gguf", Prompt: []int{1}}},
		{"a KV cache of q8_0", "q8_0: the cache holds f32 or f16", Config{Model: "x", Prompt: []int{1}, KV: tensor.Q8_0}},
	}
	for _, c := range cases {
		t.Run("Run refuses "+c.name, func(t *testing.T) {
			_, err := Run(context.Background(), c.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseModes(t *testing.T) {
	t.Run("a list keeps its order", func(t *testing.T) {
		m, err := ParseModes("cpu+gpu, cpu")
		if err != nil || len(m) != 2 || m[0] != CPUGPU || m[1] != CPU {
			t.Fatalf("%v %v", m, err)
		}
	})
	t.Run("all is every mode", func(t *testing.T) {
		if m, err := ParseModes("all"); err != nil || len(m) != 4 {
			t.Fatalf("%v %v", m, err)
		}
	})
	t.Run("an unknown mode is named", func(t *testing.T) {
		if _, err := ParseModes("cpu,gpu"); err == nil || !strings.Contains(err.Error(), `"gpu"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestEveryCombinationRuns(t *testing.T) {
	model := tinyModel(t)
	res, err := Run(context.Background(), Config{Model: model, Prompt: []int{4}, Gen: []int{2}, Reps: 1,
		Threads: []int{1}, Modes: []Mode{CPUGPU, CPUGPUAMX}, NGL: []int{1, 3}, NoWarm: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("GPU modes get a row per ngl and test, each saying why it was skipped", func(t *testing.T) {
		var got []string
		for _, r := range res.Rows {
			got = append(got, string(r.Mode)+"/ngl"+strconv.Itoa(r.NGL)+"/"+r.Test)
			if r.Skipped == "" {
				t.Fatalf("%s %s ran without a GPU backend", r.Mode, r.Test)
			}
		}
		want := "cpu+gpu/ngl1/pp4 cpu+gpu/ngl1/tg2 cpu+gpu/ngl3/pp4 cpu+gpu/ngl3/tg2 " +
			"cpu+gpu+amx/ngl1/pp4 cpu+gpu+amx/ngl1/tg2 cpu+gpu+amx/ngl3/pp4 cpu+gpu+amx/ngl3/tg2"
		if strings.Join(got, " ") != want {
			t.Fatalf("rows %v\nwant %s", got, want)
		}
	})
	t.Run("an AMX mode names its policy, others say off", func(t *testing.T) {
		if res.Rows[0].AMX != "off" || res.Rows[4].AMX != "all" {
			t.Fatalf("amx columns %q and %q", res.Rows[0].AMX, res.Rows[4].AMX)
		}
	})
}

func TestMatrixKernels(t *testing.T) {
	rec := func(op, kernel string, us int) profile.Record {
		return profile.Record{Op: op, Kernel: kernel, Time: time.Duration(us) * time.Microsecond}
	}
	cases := []struct {
		name string
		recs []profile.Record
		want string
	}{
		{"the kernels of fused matrix ops count like those of plain ones", []profile.Record{
			rec("MUL_MAT_ID_SWIGLU", "avx512-vnni", 50), rec("MUL_MATS", "avx512-vnni", 20),
			rec("MUL_MAT", "amx-int8", 30), rec("MUL_MAT_ID_SUM", "avx2", 10)}, "avx512-vnni+amx-int8+avx2"},
		{"elementwise ops do not count", []profile.Record{rec("RMS_NORM", "reference", 90), rec("MUL_MAT", "avx2", 1)}, "avx2"},
		{"no matrix op gives an empty name", []profile.Record{rec("ADD", "reference", 1)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := matrixKernels(c.recs); got != c.want {
				t.Fatalf("kernels %q, want %q", got, c.want)
			}
		})
	}
}

func TestShortOfCPU(t *testing.T) {
	for _, c := range []struct {
		threads int
		cpus    float64
		warn    bool
	}{
		{16, 15.8, false}, {16, 8, false}, {16, 7.9, true}, {16, 1.4, true}, {2, 0.6, true}, {2, 1.9, false},
		{1, 0.1, false}, // one thread: the caller alone, nothing spins, so a low share says nothing
		{16, 0, false},  // not measured
	} {
		got := shortOfCPU(c.threads, c.cpus)
		if (got != "") != c.warn {
			t.Errorf("%d threads, %.1f CPUs used: warning %q, want one: %v", c.threads, c.cpus, got, c.warn)
		}
		if c.warn && !strings.Contains(got, fmt.Sprintf("%.1f of the %d CPUs", c.cpus, c.threads)) {
			t.Errorf("warning %q does not give the figures", got)
		}
	}
}

func TestMarkdownAndCSVCarryTheWarning(t *testing.T) {
	res := Result{Rows: []Row{{Model: "m.gguf", Arch: "llama F32", Mode: CPU, Threads: 16, Test: "tg128",
		Samples: []int64{1e9}, SamplesT: []float64{128}, AvgTs: 128, CPUs: 1.4, Warning: shortOfCPU(16, 1.4)}}}
	var md, cs bytes.Buffer
	if err := res.Write(&md, "md"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "warning, cpu tg128 (16 threads): the process got 1.4 of the 16 CPUs") {
		t.Fatalf("markdown without the warning:\n%s", md.String())
	}
	if err := res.Write(&cs, "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&cs).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head, row := recs[0], recs[1]
	if head[len(head)-5] != "cpus_used" || row[len(row)-5] != "1.40" || head[len(head)-4] != "major_faults" ||
		!strings.HasPrefix(row[len(row)-3], "the process got") {
		t.Fatalf("csv: %v / %v", head, row)
	}
}

func TestALoadThatConvertsWeightsReportsItsProgress(t *testing.T) {
	// AMX registered even where it is only emulated: the repacking at load is the same on every machine, and a
	// 4-token prompt stays below the tile threshold, so nothing emulated is timed.
	setup := func(in Instance, reg *backend.Registry, p *pool.Pool) (string, error) {
		if in.Mode.AMX() {
			_, err := amx.Register(reg, p)
			return "", err
		}
		return "", nil
	}
	var loads []LoadProgress
	_, err := Run(context.Background(), Config{Model: tinyModel(t), Prompt: []int{4}, Reps: 1, Threads: []int{2},
		Modes: []Mode{CPU, CPUAMX}, AMX: "all", NoWarm: true, Setup: setup}, func(p Progress) {
		if p.Load != nil {
			if p.Row != nil {
				t.Errorf("a load report came with a row")
			}
			loads = append(loads, *p.Load)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(loads) == 0 {
		t.Fatal("the cpu+amx load repacked weights without a word")
	}
	last := loads[len(loads)-1]
	if last.Mode != CPUAMX || last.AMX != "all" || last.Threads != 2 || last.Total <= 0 || last.Done != last.Total {
		t.Fatalf("last load report %+v", last)
	}
	for _, l := range loads {
		if l.Mode != CPUAMX {
			t.Fatalf("a %s load, which converts nothing, reported %+v", l.Mode, l)
		}
	}
}

func TestReadFromDiskWarnsOnMajorFaultsOnly(t *testing.T) {
	if got := ReadFromDisk(0); got != "" {
		t.Fatalf("no faults, yet %q", got)
	}
	if got := ReadFromDisk(1234); !strings.HasPrefix(got, "1234 major page faults") || !strings.Contains(got, "page cache") {
		t.Fatalf("got %q", got)
	}
	both := strings.Join(nonEmpty(shortOfCPU(16, 1.4), "", ReadFromDisk(7)), "; ")
	if !strings.Contains(both, "1.4 of the 16 CPUs") || !strings.Contains(both, "; 7 major page faults") {
		t.Fatalf("combined warning %q", both)
	}
}

func TestMarkdownShowsTheCacheTypesOnlyWhenOneIsNotF32(t *testing.T) {
	row := Row{Model: "m.gguf", Arch: "llama F32", Mode: CPU, Threads: 2, Test: "tg8", Samples: []int64{1e9},
		SamplesT: []float64{8}, AvgTs: 8, TypeK: "f32", TypeV: "f32"}
	var plain, f16 bytes.Buffer
	if err := (&Result{Rows: []Row{row}}).Write(&plain, "md"); err != nil {
		t.Fatal(err)
	}
	row.TypeK, row.TypeV = "f16", "f16"
	if err := (&Result{Rows: []Row{row}}).Write(&f16, "md"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "type_k") {
		t.Fatalf("an all-f32 table shows the cache types:\n%s", plain.String())
	}
	head, line := strings.Split(f16.String(), "\n")[0], strings.Split(f16.String(), "\n")[2]
	if !strings.Contains(head, "| type_k | type_v |") || !strings.Contains(line, "| f16    | f16    |") {
		t.Fatalf("an f16 table:\n%s", f16.String())
	}
}
