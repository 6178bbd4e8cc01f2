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

// Calibration is the measured crossover between the AVX-512 path and the tile kernels on one machine.
type Calibration struct {
	CPU           string     `json:"cpu"`
	When          string     `json:"when"`
	Threads       int        `json:"threads"`
	Config        string     `json:"config"`
	Threshold     int        `json:"threshold_int8"` // rows from which int8 weights use tiles
	ThresholdBF16 int        `json:"threshold_bf16"` // rows from which bf16 weights use tiles
	Points        []CalPoint `json:"points"`
}

// CalPoint is one timed shape: the same MUL_MAT on both paths.
type CalPoint struct {
	Type    string  `json:"type"` // "q8_0" or "bf16"
	M, N, K int     `json:"-"`
	Shape   string  `json:"shape"`
	TileUs  float64 `json:"tile_us"`
	VecUs   float64 `json:"vec_us"`
	Faster  string  `json:"faster"`
	TileGop float64 `json:"tile_gops"`
	VecGop  float64 `json:"vec_gops"`
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
	fmt.Fprintf(&s, "AMX calibration on %s, %d threads, %s (%s)\n", c.CPU, c.Threads, c.Config, c.When)
	fmt.Fprintf(&s, "%-6s %-18s %10s %10s %9s %9s  %s\n", "type", "shape MxNxK", "tiles µs", "avx512 µs", "tile GOP/s", "avx GOP/s", "faster")
	for _, p := range c.Points {
		fmt.Fprintf(&s, "%-6s %-18s %10.1f %10.1f %9.0f %9.0f  %s\n", p.Type, p.Shape, p.TileUs, p.VecUs, p.TileGop, p.VecGop, p.Faster)
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

// Calibrate times MUL_MAT on both paths for row counts from 1 to 256 (N = K = 2048, q8_0 and bf16) and picks,
// for each type, the smallest row count from which the tiles win at every measured size. A zero cfg means the
// default configurations (DefaultConfig, DefaultConfigBF16). It does not save.
func Calibrate(p *pool.Pool, cfg TileConfig) (Calibration, error) {
	if !detectStatus().Usable {
		return Calibration{}, ErrEmulated
	}
	desc := cfg.String()
	if cfg == (TileConfig{}) {
		desc = "int8 " + DefaultConfig.String() + ", bf16 " + DefaultConfigBF16.bf16String()
	}
	c := Calibration{CPU: cpuModel(), When: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Threads: p.Threads(), Config: desc}
	const n, k = 2048, 2048
	ms := []int{1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256}
	for _, typ := range []tensor.DType{tensor.Q8_0, tensor.BF16} {
		w := RandomWeight(typ, k, n, 1, rand.New(rand.NewPCG(1, 2)))
		bt := NewBufferType()
		if cfg != (TileConfig{}) {
			bt.Group = cfg.Group
		}
		if err := bt.Import(w); err != nil {
			return c, err
		}
		thr := 1 << 30
		wins := map[int]bool{}
		for _, m := range ms {
			tileT, err := timeMulMat(p, cfg, w, m, 0)
			if err != nil {
				return c, err
			}
			vecT, err := timeMulMat(p, cfg, w, m, 1<<30)
			if err != nil {
				return c, err
			}
			ops := 2 * float64(m) * n * k
			pt := CalPoint{Type: typ.String(), M: m, N: n, K: k, Shape: fmt.Sprintf("%dx%dx%d", m, n, k),
				TileUs: tileT.Seconds() * 1e6, VecUs: vecT.Seconds() * 1e6,
				TileGop: ops / tileT.Seconds() / 1e9, VecGop: ops / vecT.Seconds() / 1e9, Faster: "avx512"}
			if tileT < vecT {
				pt.Faster = "tiles"
				wins[m] = true
			}
			c.Points = append(c.Points, pt)
		}
		// The threshold is the smallest m from which the tiles win at every larger measured m.
		sort.Sort(sort.Reverse(sort.IntSlice(ms)))
		for _, m := range ms {
			if !wins[m] {
				break
			}
			thr = m
		}
		sort.Ints(ms)
		if typ == tensor.Q8_0 {
			c.Threshold = thr
		} else {
			c.ThresholdBF16 = thr
		}
	}
	return c, nil
}

// timeMulMat is the median of several runs of one MUL_MAT with the given threshold.
func timeMulMat(p *pool.Pool, cfg TileConfig, w *graph.Tensor, m, threshold int) (time.Duration, error) {
	b, err := NewBackend(p, Options{Config: cfg, Threshold: max(threshold, 1)})
	if err != nil {
		return 0, err
	}
	if threshold == 0 {
		b.Threshold, b.ThresholdBF16 = 0, 0
	}
	op := RandomMulMat(w, m, rand.New(rand.NewPCG(3, uint64(m))))
	var ts []time.Duration
	deadline := time.Now().Add(100 * time.Millisecond)
	for i := 0; i < 50 && (i < 5 || time.Now().Before(deadline)); i++ {
		t0 := time.Now()
		if _, err := b.Compute(op); err != nil {
			return 0, err
		}
		if i > 0 {
			ts = append(ts, time.Since(t0))
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts[len(ts)/2], nil
}
