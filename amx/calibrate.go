package amx

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// Calibration is the measured crossover, on one machine, between the tile kernels and what runs below the
// threshold: CPU mode's own kernel on the plain GGUF bytes (the backend's small-batch path for weights from a
// mapped file, i.e. every model weight).
type Calibration struct {
	CPU           string     `json:"cpu"`
	When          string     `json:"when"`
	Threads       int        `json:"threads"`
	Config        string     `json:"config"`
	Against       string     `json:"against"`        // what the tiles were timed against: calibratedAgainst
	Threshold     int        `json:"threshold_int8"` // rows from which int8 weights use tiles
	ThresholdBF16 int        `json:"threshold_bf16"` // rows from which bf16 weights use tiles
	Points        []CalPoint `json:"points"`
}

// calibratedAgainst names what the small-batch path is since it runs CPU mode's kernel; a stored calibration
// that says otherwise was measured against another path (the VNNI path over the packing, before) and is not used.
const calibratedAgainst = "CPU mode's kernel on the plain bytes"

// CalPoint is one timed shape: the same MUL_MAT on the tiles and on the small-batch path.
type CalPoint struct {
	Type    string  `json:"type"` // "q4_0", "q8_0" or "bf16"
	M, N, K int     `json:"-"`
	Shape   string  `json:"shape"`
	TileUs  float64 `json:"tile_us"`
	VecUs   float64 `json:"vec_us"` // the small-batch path: CPU mode's kernel on the plain bytes
	Faster  string  `json:"faster"` // "tiles" or "cpu"
	TileGop float64 `json:"tile_gops"`
	VecGop  float64 `json:"vec_gops"`
	Kernel  string  `json:"small_kernel"` // the small-batch path's kernel name, e.g. "avx512-vnni (m < 1073741824, plain q4_0)"
}

// CalibrationPath is where the calibration is stored: $TILELAB_AMX_CALIBRATION, or
// os.UserCacheDir()/tilelab/amx-calibration.json.
func CalibrationPath() (string, error) {
	if p := os.Getenv("TILELAB_AMX_CALIBRATION"); p != "" {
		return p, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the AMX calibration: %w", err)
	}
	return filepath.Join(d, "tilelab", "amx-calibration.json"), nil
}

// LoadCalibration reads the stored calibration; it is an error when none is stored or it was measured on
// another CPU model.
func LoadCalibration() (Calibration, error) {
	var c Calibration
	p, err := CalibrationPath()
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("AMX calibration %s: %w", p, err)
	}
	if cpu := cpuModel(); c.CPU != cpu {
		return c, fmt.Errorf("AMX calibration %s was measured on %q, this is %q", p, c.CPU, cpu)
	}
	if c.Against != calibratedAgainst {
		return c, fmt.Errorf("AMX calibration %s timed the tiles against %q, not %s: calibrate again", p, c.Against, calibratedAgainst)
	}
	if c.Threshold < 1 || c.ThresholdBF16 < 1 {
		// 0 would send even one-row batches to the tiles, the loss the calibration exists to prevent.
		return c, fmt.Errorf("AMX calibration %s has thresholds int8 %d, bf16 %d; want row counts of at least 1: calibrate again",
			p, c.Threshold, c.ThresholdBF16)
	}
	return c, nil
}

// Save stores the calibration where LoadCalibration finds it, and returns the path.
func (c Calibration) Save() (string, error) {
	p, err := CalibrationPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, append(b, '\n'), 0o644)
}

// Table formats the points as a text table.
func (c Calibration) Table() string {
	var s strings.Builder
	fmt.Fprintf(&s, "AMX calibration on %s, %d threads, %s, against %s (%s)\n", c.CPU, c.Threads, c.Config, c.Against, c.When)
	fmt.Fprintf(&s, "%-6s %-18s %10s %10s %9s %9s  %-6s %s\n", "type", "shape MxNxK", "tiles µs", "cpu µs", "tile GOP/s", "cpu GOP/s", "faster", "cpu kernel")
	for _, p := range c.Points {
		kernel, _, _ := strings.Cut(p.Kernel, " (")
		fmt.Fprintf(&s, "%-6s %-18s %10.1f %10.1f %9.0f %9.0f  %-6s %s\n", p.Type, p.Shape, p.TileUs, p.VecUs, p.TileGop, p.VecGop, p.Faster, kernel)
	}
	fmt.Fprintf(&s, "threshold: int8 tiles from %d rows, bf16 tiles from %d rows\n", c.Threshold, c.ThresholdBF16)
	return s.String()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// ErrEmulated is returned by timed operations on a machine where the tile kernels would run in the emulator.
var ErrEmulated = errors.New("no AMX here; emulator is for correctness only")

// Calibrate times MUL_MAT on the tiles and on the small-batch path (CPU mode's kernel on the plain bytes) for row
// counts from 1 to 256, N = K = 4096, for q4_0, q8_0 and bf16 weights, and picks for int8 (the larger of q4_0's
// and q8_0's) and for bf16 the smallest row count from which the tiles win at every measured size. Each timed
// run reads another copy of the weight, about 128 MiB of plain weights in all, so the weights come from memory as
// a model's layers do rather than from the cache. A zero cfg means the default configurations (DefaultConfig,
// DefaultConfigBF16). It does not save.
func Calibrate(p *pool.Pool, cfg TileConfig) (Calibration, error) {
	if !detectStatus().Usable {
		return Calibration{}, ErrEmulated
	}
	desc := cfg.String()
	if cfg == (TileConfig{}) {
		desc = "int8 " + DefaultConfig.String() + ", bf16 " + DefaultConfigBF16.bf16String()
	}
	c := Calibration{CPU: cpuModel(), When: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Threads: p.Threads(), Config: desc,
		Against: calibratedAgainst}
	const n, k = 4096, 4096
	ms := []int{1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256}
	c.Threshold = 0
	for ti, typ := range []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.BF16} {
		bt := &BufferType{Group: DefaultConfig.Group, Plain: PlainAlways}
		if cfg != (TileConfig{}) {
			bt.Group = cfg.Group
		}
		copies := min(16, max(2, int((128<<20)/(int64(typ.RowBytes(k))*n))))
		ws := make([]*graph.Tensor, copies)
		for i := range ws {
			ws[i] = RandomWeight(typ, k, n, 1, rand.New(rand.NewPCG(uint64(ti), uint64(i))))
			if err := bt.Import(ws[i]); err != nil {
				return c, err
			}
		}
		wins := map[int]bool{}
		for _, m := range ms {
			tileT, _, err := timeMulMat(p, cfg, ws, m, 0)
			if err != nil {
				return c, err
			}
			vecT, kernel, err := timeMulMat(p, cfg, ws, m, 1<<30)
			if err != nil {
				return c, err
			}
			ops := 2 * float64(m) * n * k
			pt := CalPoint{Type: typ.String(), M: m, N: n, K: k, Shape: fmt.Sprintf("%dx%dx%d", m, n, k),
				TileUs: tileT.Seconds() * 1e6, VecUs: vecT.Seconds() * 1e6,
				TileGop: ops / tileT.Seconds() / 1e9, VecGop: ops / vecT.Seconds() / 1e9, Faster: "cpu", Kernel: kernel}
			if tileT < vecT {
				pt.Faster = "tiles"
				wins[m] = true
			}
			c.Points = append(c.Points, pt)
		}
		thr := crossover(ms, wins)
		if typ == tensor.BF16 {
			c.ThresholdBF16 = thr
		} else {
			c.Threshold = max(c.Threshold, thr)
		}
	}
	return c, nil
}

// crossover is the smallest measured row count from which the tiles win at every larger measured count (1<<30
// when they do not win at the largest): one noisy point moves it up, never down, so AMX mode stays at least as
// fast as CPU mode.
func crossover(ms []int, wins map[int]bool) int {
	sorted := append([]int(nil), ms...)
	sort.Sort(sort.Reverse(sort.IntSlice(sorted)))
	thr := 1 << 30
	for _, m := range sorted {
		if !wins[m] {
			break
		}
		thr = m
	}
	return thr
}

// timeMulMat is the median of several runs of one MUL_MAT with the given threshold, each run on the next of the
// weights, and the kernel name.
func timeMulMat(p *pool.Pool, cfg TileConfig, ws []*graph.Tensor, m, threshold int) (time.Duration, string, error) {
	b, err := NewBackend(p, Options{Config: cfg, Threshold: max(threshold, 1)})
	if err != nil {
		return 0, "", err
	}
	if threshold == 0 {
		b.Threshold, b.ThresholdBF16 = 0, 0
	}
	op := RandomMulMat(ws[0], m, rand.New(rand.NewPCG(3, uint64(m))))
	var ts []time.Duration
	var name string
	deadline := time.Now().Add(100 * time.Millisecond)
	for i := 0; i < 50 && (i < 2*len(ws) || time.Now().Before(deadline)); i++ {
		op.Src[0] = ws[i%len(ws)]
		t0 := time.Now()
		if name, err = b.Compute(op); err != nil {
			return 0, "", err
		}
		if i >= len(ws) { // the first pass warms up
			ts = append(ts, time.Since(t0))
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts[len(ts)/2], name, nil
}
