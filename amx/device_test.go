//go:build amxdevice

// The accelerator machine's figures: peak tile rates, GEMM rates at the shapes, the tile-configuration
// sweep and the MUL_MAT_ID comparison. Built only with -tags amxdevice (scripts/device-amx.sh does), since the
// shapes are far too large for CI.
package amx

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

type report struct {
	t *testing.T
	b strings.Builder
}

func (r *report) printf(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	r.b.WriteString(s)
	fmt.Print(s)
}

func (r *report) save() {
	if dir := os.Getenv("OUT"); dir != "" {
		_ = os.WriteFile(dir+"/amx-figures.md", []byte(r.b.String()), 0o644)
	}
}

func TestDeviceFigures(t *testing.T) {
	needAMX(t)
	p := pool.New(0)
	defer p.Close()
	rep := &report{t: t}
	defer rep.save()
	rep.printf("# AMX figures, %s, %d threads, %s\n\n", cpuModel(), p.Threads(), time.Now().UTC().Format(time.RFC3339))

	i8, bf, err := Peak(p)
	if err != nil {
		t.Fatal(err)
	}
	rep.printf("peak (tight 2x2 tile loop): int8 %.2f TOPS, bf16 %.2f TFLOPS\n\n", i8, bf)

	only := os.Getenv("AMX_FIGURES") // comma list of sections; empty = all
	want := func(s string) bool { return only == "" || strings.Contains(","+only+",", ","+s+",") }

	if want("sweep") {
		var cfgs []TileConfig
		for _, a := range [][2]int{{2, 2}, {1, 4}, {4, 1}, {1, 2}, {2, 1}} {
			for _, g := range []int{32, 256, 512, 0} {
				cfgs = append(cfgs, TileConfig{Rows: 16, KStep: 64, MT: a[0], NT: a[1], Group: g})
			}
		}
		cfgs = append(cfgs, TileConfig{Rows: 16, KStep: 32, MT: 2, NT: 2, Group: 0}, TileConfig{Rows: 8, KStep: 64, MT: 2, NT: 2, Group: 0})
		rows, err := Sweep(p, tensor.Q8_0, 512, 2048, 4096, cfgs, 5)
		if err != nil {
			t.Fatal(err)
		}
		var bcfg []TileConfig
		for _, a := range [][2]int{{2, 2}, {1, 4}, {4, 1}, {1, 2}, {2, 1}} {
			bcfg = append(bcfg, TileConfig{Rows: 16, KStep: 64, MT: a[0], NT: a[1]})
		}
		bcfg = append(bcfg, TileConfig{Rows: 16, KStep: 32, MT: 2, NT: 2})
		for _, ch := range []int{128, 256, 512} {
			bcfg = append(bcfg, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Chunk: ch}, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1, Chunk: ch})
		}
		brows, err := Sweep(p, tensor.BF16, 512, 2048, 4096, bcfg, 5)
		if err != nil {
			t.Fatal(err)
		}
		rep.printf("## Tile-configuration sweep (MUL_MAT 512x2048x4096)\n\n%s\n", SweepTable(append(rows, brows...)))
	}

	if want("gemm") {
		rep.printf("## GEMM at the issue's shapes (share of the peak measured above)\n\n| type | shape | config | ms | rate | %% of peak |\n|---|---|---|---|---|---|\n")
		for _, sh := range [][3]int{{4096, 4096, 4096}, {512, 2048, 4096}} {
			for _, c := range gemmConfigs() {
				rows, err := Sweep(p, c.typ, sh[0], sh[1], sh[2], []TileConfig{c.cfg}, 3)
				if err != nil {
					t.Fatal(err)
				}
				peak := i8
				if c.typ == tensor.BF16 {
					peak = bf
				}
				r := rows[0]
				rep.printf("| %s | %s | %s | %.2f | %.2f | %.0f%% |\n", r.Type, r.Shape, r.Config, r.Seconds*1e3, r.TOPS, 100*r.TOPS/peak)
			}
		}
		rep.printf("\n")
	}

	if want("moe") {
		rep.printf("## MUL_MAT_ID: 128 experts, 8 used, 512 tokens (q4_0)\n\n| projection | K x N | config | tiles ms | avx512-vnni ms | speed-up |\n|---|---|---|---|---|---|\n")
		for _, pr := range []struct {
			name   string
			k, n   int
			shared bool
		}{{"gate/up", 2048, 768, true}, {"down", 768, 2048, false}} {
			r := rand.New(rand.NewPCG(21, uint64(pr.k)))
			plain := RandomWeight(tensor.Q4_0, pr.k, pr.n, 128, r)
			op := RandomMulMatID(plain, 512, 8, pr.shared, r)
			for _, g := range []int{32, 256, 0} {
				w := &graph.Tensor{Name: "exps", Type: plain.Type, Ne: plain.Ne, Layout: tensor.Plain, Data: append([]byte(nil), plain.Data...)}
				if err := (&BufferType{Group: g}).Import(w); err != nil {
					t.Fatal(err)
				}
				op.Src[0] = w
				cfg := DefaultConfig
				cfg.Group = g
				tiles, _ := NewBackend(p, Options{Config: cfg, Threshold: 1})
				vec, _ := NewBackend(p, Options{Config: cfg, Threshold: 1 << 30})
				dt, kt, err := TimeOp(tiles, op, 5)
				if err != nil {
					t.Fatal(err)
				}
				dv, kv, err := TimeOp(vec, op, 5)
				if err != nil {
					t.Fatal(err)
				}
				rep.printf("| %s | %dx%d | %s | %.2f | %.2f | %.2fx |\n", pr.name, pr.k, pr.n, cfg, dt.Seconds()*1e3, dv.Seconds()*1e3, dv.Seconds()/dt.Seconds())
				_, _ = kt, kv
			}
		}
		rep.printf("\n")
	}

	if want("calibrate") {
		c, err := Calibrate(p, DefaultConfig)
		if err != nil {
			t.Fatal(err)
		}
		rep.printf("## Calibration\n\n```\n%s```\n", c.Table())
	}
}

type gemmCase struct {
	typ tensor.DType
	cfg TileConfig
}

func gemmConfigs() []gemmCase {
	return []gemmCase{
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 32}},
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 0}},
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 256}},
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1, Group: 256}},
		{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2}},
		{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Chunk: 256}},
	}
}
