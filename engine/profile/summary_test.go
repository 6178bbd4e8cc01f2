package profile

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func sample() []Record {
	ms := time.Millisecond
	return []Record{
		{Op: "MUL_MAT", Name: "blk.0.attn_q", Layer: 0, Backend: "AMX", Kernel: "amx-int8", Flops: 4e9, Bytes: 2e6, Time: 2 * ms},
		{Op: "MUL_MAT", Name: "blk.1.attn_q", Layer: 1, Backend: "AMX", Kernel: "amx-int8", Flops: 4e9, Bytes: 2e6, Time: 2 * ms},
		{Op: "MUL_MAT_ID", Name: "blk.0.ffn_up_exps", Layer: 0, Backend: "CPU", Kernel: "avx512-vnni", Flops: 6e9, Bytes: 9e6, Time: 3 * ms},
		{Op: "RMS_NORM", Name: "blk.1.attn_norm", Layer: 1, Backend: "CPU", Kernel: "reference", Flops: 1e6, Bytes: 1e6, Time: 1 * ms},
		{Op: "GET_ROWS", Name: "token_embd", Layer: -1, Backend: "CPU", Kernel: "reference", Bytes: 1e6, Time: 2 * ms},
	}
}

func TestSummarize(t *testing.T) {
	cases := []struct {
		name  string
		by    []Key
		order []string
		calls []int
	}{
		{"grouping by op puts the most expensive op first", []Key{ByOp}, []string{"MUL_MAT", "MUL_MAT_ID", "GET_ROWS", "RMS_NORM"}, []int{2, 1, 1, 1}},
		{"grouping by nothing groups by op", nil, []string{"MUL_MAT", "MUL_MAT_ID", "GET_ROWS", "RMS_NORM"}, []int{2, 1, 1, 1}},
		{"grouping by backend sums across ops", []Key{ByBackend}, []string{"CPU", "AMX"}, []int{3, 2}},
		{"grouping by layer keeps layer order with the outside first", []Key{ByLayer}, []string{"-", "0", "1"}, []int{1, 2, 2}},
		{"grouping by kernel names the variants", []Key{ByKernel}, []string{"amx-int8", "avx512-vnni", "reference"}, []int{2, 1, 2}},
		{"a key in capitals groups as ParseKey reads it, not by name", []Key{"Backend"}, []string{"CPU", "AMX"}, []int{3, 2}},
		{"grouping by op and backend joins the keys", []Key{ByOp, ByBackend}, []string{"MUL_MAT/AMX", "MUL_MAT_ID/CPU", "GET_ROWS/CPU", "RMS_NORM/CPU"}, []int{2, 1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := Summarize(sample(), c.by...)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var share float64
			for i, r := range rows {
				got = append(got, r.Key())
				share += r.Share
				if i < len(c.calls) && r.Calls != c.calls[i] {
					t.Errorf("%s: %d calls, want %d", r.Key(), r.Calls, c.calls[i])
				}
			}
			if strings.Join(got, ",") != strings.Join(c.order, ",") {
				t.Errorf("rows %v, want %v", got, c.order)
			}
			if math.Abs(share-1) > 1e-9 {
				t.Errorf("shares add up to %v, want 1", share)
			}
		})
	}
}

func TestSummarizeRates(t *testing.T) {
	rows, err := Summarize(sample(), ByOp)
	if err != nil {
		t.Fatal(err)
	}
	mm := rows[0]
	// 8e9 operations and 4e6 bytes in 4 ms.
	if mm.Time != 4*time.Millisecond || math.Abs(mm.GOPS-2000) > 1e-6 || math.Abs(mm.GBps-1) > 1e-9 || math.Abs(mm.Share-0.4) > 1e-9 {
		t.Errorf("MUL_MAT row %+v: want 4ms, 2000 GOP/s, 1 GB/s, share 0.4", mm)
	}
}

func TestSummarizeMatchesAPlainSumOnRandomRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ops := []string{"MUL_MAT", "ADD", "ROPE", "SOFT_MAX"}
	recs := make([]Record, 500)
	want := map[string]time.Duration{}
	for i := range recs {
		recs[i] = Record{Op: ops[rng.IntN(len(ops))], Layer: rng.IntN(5) - 1, Time: time.Duration(1 + rng.IntN(1e6))}
		want[recs[i].Op] += recs[i].Time
	}
	rows, err := Summarize(recs, ByOp)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows for %d ops", len(rows), len(want))
	}
	for i, r := range rows {
		if r.Time != want[r.Key()] {
			t.Errorf("%s: %v, want %v", r.Key(), r.Time, want[r.Key()])
		}
		if i > 0 && r.Time > rows[i-1].Time {
			t.Errorf("row %d (%v) is larger than the row before it (%v)", i, r.Time, rows[i-1].Time)
		}
	}
}

func TestSummarizeRejectsAnUnknownKey(t *testing.T) {
	if _, err := Summarize(sample(), "shape"); err == nil || !strings.Contains(err.Error(), `"shape"`) {
		t.Errorf("error %v should name the bad key", err)
	}
}

func TestAccounting(t *testing.T) {
	r := &Recorder{Records: sample(), Overhead: time.Millisecond} // 10 ms of ops + 1 ms overhead
	cases := []struct {
		name string
		wall time.Duration
		ok   bool
	}{
		{"a wall time equal to the recorded time is covered", 11 * time.Millisecond, true},
		{"a wall time 5% longer is within 10%", 11550 * time.Microsecond, true},
		{"a wall time 20% longer is not", 13200 * time.Microsecond, false},
		{"no wall time cannot be accounted for", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := r.Account(c.wall).Check(0.10)
			if (err == nil) != c.ok {
				t.Errorf("Check = %v, want ok=%v (%s)", err, c.ok, r.Account(c.wall))
			}
		})
	}
}

func TestNilRecorderIsFreeAndEmpty(t *testing.T) {
	var r *Recorder
	if r.Enabled() {
		t.Fatal("a nil recorder reports itself enabled")
	}
	allocs := testing.AllocsPerRun(100, func() { r.Add(Record{Op: "MUL_MAT"}) })
	if allocs != 0 {
		t.Errorf("Add on a nil recorder allocates %v times", allocs)
	}
	if rows, err := r.Summary(); err != nil || len(rows) != 0 || r.OpTime() != 0 {
		t.Errorf("nil recorder summary = %v, %v", rows, err)
	}
}

func BenchmarkAddWhenOff(b *testing.B) {
	var r *Recorder
	for b.Loop() {
		if r.Enabled() {
			r.Add(Record{})
		}
	}
}

func TestWriteTable(t *testing.T) {
	rows, _ := Summarize(sample(), ByOp, ByBackend)
	var b strings.Builder
	if err := WriteTable(&b, rows, ByOp, ByBackend); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"op/backend", "total ms", "MUL_MAT/AMX", "4.000", "40.0", "2000.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
