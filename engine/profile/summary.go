package profile

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Key is a record field a summary groups by.
type Key string

// The keys Summarize groups by; the workbench's `profile by=...` takes the same words.
const (
	ByOp      Key = "op"
	ByBackend Key = "backend"
	ByLayer   Key = "layer"
	ByKernel  Key = "kernel"
	ByName    Key = "name"
)

// Keys lists the valid grouping keys, for error messages and completion.
var Keys = []Key{ByOp, ByBackend, ByLayer, ByKernel, ByName}

// ParseKey reads a grouping key ("op", "backend", "layer", "kernel", "name").
func ParseKey(s string) (Key, error) {
	for _, k := range Keys {
		if string(k) == strings.ToLower(s) {
			return k, nil
		}
	}
	return "", fmt.Errorf("cannot group a profile by %q (want one of op, backend, layer, kernel, name)", s)
}

func (k Key) of(r *Record) string {
	switch k {
	case ByOp:
		return r.Op
	case ByBackend:
		return r.Backend
	case ByLayer:
		if r.Layer < 0 {
			return "-"
		}
		return strconv.Itoa(r.Layer)
	case ByKernel:
		return r.Kernel
	default:
		return r.Name
	}
}

// Row is one group of a summary: how often its ops ran, how long they took and at what rate.
type Row struct {
	Keys  []string      `json:"keys"` // the group's value for each key asked for, in that order
	Calls int           `json:"calls"`
	Time  time.Duration `json:"time_ns"`
	Share float64       `json:"share"` // fraction of all recorded op time
	Flops int64         `json:"flops"`
	Bytes int64         `json:"bytes"`
	GOPS  float64       `json:"gops"` // 1e9 arithmetic operations per second (a multiply-add counts 2)
	GBps  float64       `json:"gbps"` // 1e9 bytes read and written per second
}

// Key joins the group's key values with "/", e.g. "MUL_MAT/CPU".
func (r Row) Key() string { return strings.Join(r.Keys, "/") }

// Summarize groups records by the given keys (by op type when none are given). Rows come largest total time
// first, except a summary by layer alone, which keeps layer order (ops outside the layers, "-", first).
func Summarize(recs []Record, by ...Key) ([]Row, error) {
	if len(by) == 0 {
		by = []Key{ByOp}
	}
	// Keys are read as ParseKey reads them, so "Backend" groups by backend rather than falling through to name.
	norm := make([]Key, len(by))
	for i, k := range by {
		pk, err := ParseKey(string(k))
		if err != nil {
			return nil, err
		}
		norm[i] = pk
	}
	by = norm
	idx := map[string]int{}
	var rows []Row
	var all time.Duration
	keys := make([]string, len(by))
	for i := range recs {
		r := &recs[i]
		for j, k := range by {
			keys[j] = k.of(r)
		}
		id := strings.Join(keys, "\x00")
		n, ok := idx[id]
		if !ok {
			n = len(rows)
			idx[id] = n
			rows = append(rows, Row{Keys: slices.Clone(keys)})
		}
		row := &rows[n]
		row.Calls++
		row.Time += r.Time
		row.Flops += r.Flops
		row.Bytes += r.Bytes
		all += r.Time
	}
	for i := range rows {
		r := &rows[i]
		if all > 0 {
			r.Share = float64(r.Time) / float64(all)
		}
		if s := r.Time.Seconds(); s > 0 {
			r.GOPS = float64(r.Flops) / s / 1e9
			r.GBps = float64(r.Bytes) / s / 1e9
		}
	}
	if len(by) == 1 && by[0] == ByLayer {
		slices.SortStableFunc(rows, func(a, b Row) int { return cmp.Compare(layerNum(a.Keys[0]), layerNum(b.Keys[0])) })
	} else {
		slices.SortStableFunc(rows, func(a, b Row) int {
			if c := cmp.Compare(b.Time, a.Time); c != 0 {
				return c
			}
			return cmp.Compare(a.Key(), b.Key())
		})
	}
	return rows, nil
}

func layerNum(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// Summary groups this recorder's records (see Summarize); a nil recorder has none.
func (r *Recorder) Summary(by ...Key) ([]Row, error) {
	if r == nil {
		return Summarize(nil, by...)
	}
	return Summarize(r.Records, by...)
}

// OpTime is the sum of the recorded ops' wall times.
func (r *Recorder) OpTime() time.Duration {
	if r == nil {
		return 0
	}
	var t time.Duration
	for i := range r.Records {
		t += r.Records[i].Time
	}
	return t
}

// Accounting compares what a profile recorded with the wall time of the work it profiled.
type Accounting struct {
	Ops      time.Duration `json:"ops_ns"`      // recorded op time
	Overhead time.Duration `json:"overhead_ns"` // recorded time outside ops
	Wall     time.Duration `json:"wall_ns"`     // measured around the whole forward pass
}

// Account measures how much of a forward pass's wall time the recorder explains.
func (r *Recorder) Account(wall time.Duration) Accounting {
	a := Accounting{Ops: r.OpTime(), Wall: wall}
	if r != nil {
		a.Overhead = r.Overhead
	}
	return a
}

// Covered is the recorded time (ops plus overhead) as a fraction of the wall time: 1 means every nanosecond is
// accounted for; below 1, time went somewhere the profile does not see.
func (a Accounting) Covered() float64 {
	if a.Wall <= 0 {
		return 0
	}
	return float64(a.Ops+a.Overhead) / float64(a.Wall)
}

// Check returns an error when the recorded time differs from the wall time by more than tol (0.10 for 10%).
func (a Accounting) Check(tol float64) error {
	if a.Wall <= 0 {
		return fmt.Errorf("no wall time to account for")
	}
	if c := a.Covered(); c < 1-tol || c > 1+tol {
		return fmt.Errorf("the profile accounts for %.1f%% of the wall time (ops %v + overhead %v of %v), outside ±%.0f%%",
			100*c, a.Ops, a.Overhead, a.Wall, 100*tol)
	}
	return nil
}

// String reads "ops 41.2ms + overhead 1.3ms = 97.8% of 43.4ms".
func (a Accounting) String() string {
	return fmt.Sprintf("ops %v + overhead %v = %.1f%% of %v", a.Ops.Round(time.Microsecond),
		a.Overhead.Round(time.Microsecond), 100*a.Covered(), a.Wall.Round(time.Microsecond))
}

// WriteTable prints rows as an aligned text table: key, calls, total ms, share, GOP/s, GB/s.
func WriteTable(w io.Writer, rows []Row, by ...Key) error {
	if len(by) == 0 {
		by = []Key{ByOp}
	}
	names := make([]string, len(by))
	for i, k := range by {
		names[i] = string(k)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tcalls\ttotal ms\tshare %%\tGOP/s\tGB/s\t\n", strings.Join(names, "/"))
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t\n", r.Key(), r.Calls,
			float64(r.Time)/float64(time.Millisecond), 100*r.Share, r.GOPS, r.GBps)
	}
	return tw.Flush()
}
