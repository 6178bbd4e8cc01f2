package workbench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"tilelab/cuda"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/placement"
	"tilelab/workbench/result"
)

func init() {
	registry["plan"].run = runPlan
}

// planRegistry holds every buffer type a plan can name. None needs its hardware: a plan says what each would
// take on a machine that has it.
func planRegistry() *backend.Registry {
	reg := backend.NewRegistry()
	reg.AddBufferType(cpu.BufferType())
	reg.AddBufferType(amxPlanBufferType())
	cuda.RegisterForPlan(reg)
	return reg
}

// openSource opens a model's metadata: a GGUF file (mapped, weights untouched) or a synthetic preset's header
// built in memory. desc says what it is in one line.
func (c *ctxCall) openSource(param, src, quant string, layers int) (f *gguf.File, desc string, err error) {
	if preset, ok := strings.CutPrefix(src, "synth:"); ok {
		return c.synthHeader(param, preset, quant, layers)
	}
	if quant != "" || layers != 0 {
		return nil, "", c.errAt(param, "they shape synth:PRESET sources; a file keeps its own", "quant= and layers= do not apply to the file %s", src)
	}
	path := c.path(src)
	if _, err := os.Stat(path); err != nil {
		hint := "give a .gguf path (relative to " + c.baseDir() + ") or synth:PRESET"
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", c.errAt(param, hint, "no such file: %s", src)
		}
		return nil, "", c.errAt(param, hint, "cannot open %s: %v", src, err)
	}
	f, err = gguf.Open(path)
	if err != nil {
		return nil, "", c.errAt(param, "is it a GGUF model?", "cannot read %s: %v", src, err)
	}
	return f, fmt.Sprintf("%s (%s)", filepath.Base(src), f.Architecture()), nil
}

func runPlan(c *ctxCall) error {
	quants := c.Strs("quant")
	if len(quants) == 0 {
		quants = []string{""}
	}
	tot := result.NewTable("", "plan", "buffer type", "tensors", "GGUF:MiB", "packed:MiB")
	chart := &result.Chart{Kind: result.StackedBars, XLabel: "plan", YLabel: "packed size (MiB)"}
	byType := map[string][]float64{}
	var typeOrder []string
	var tensorTables []*result.Table
	var summaries []string
	var desc string
	reg := planRegistry()
	for _, q := range quants {
		f, d, err := c.openSource("source", c.Str("source"), q, c.Int("layers"))
		if err != nil {
			return err
		}
		desc = d
		if len(quants) > 1 {
			// Each row names its quant; the title must not name only the last one.
			desc = fmt.Sprintf("%s (%s)", c.Str("source"), f.Architecture())
		}
		for _, pt := range c.Sweep("amx", "ngl") {
			if err := c.ctx.Err(); err != nil {
				f.Close()
				return interrupted(err)
			}
			o := placement.Options{AMX: pt["amx"].Text, NGL: pt["ngl"].V.(int), GPU: c.Bool("gpu")}
			if err := o.Validate(); err != nil {
				f.Close()
				return c.errAt("ngl", "", "%v", err)
			}
			p, err := placement.FromGGUF(f, o, reg)
			if err != nil {
				f.Close()
				return fmt.Errorf("placing %s: %w", d, err)
			}
			label := o.String()
			if q != "" {
				label = q + " " + label
			}
			chart.Categories = append(chart.Categories, label)
			seen := map[string]bool{}
			for _, t := range p.Totals() {
				if t.Count == 0 {
					continue
				}
				tot.Add(label, t.BufferType, t.Count, t.MiB, t.PackedMiB)
				if _, ok := byType[t.BufferType]; !ok {
					typeOrder = append(typeOrder, t.BufferType)
					byType[t.BufferType] = make([]float64, len(chart.Categories)-1)
				}
				byType[t.BufferType] = append(byType[t.BufferType], t.PackedMiB)
				seen[t.BufferType] = true
			}
			for _, bt := range typeOrder {
				if !seen[bt] {
					byType[bt] = append(byType[bt], 0)
				}
			}
			summaries = append(summaries, p.Summary())
			if c.Bool("tensors") {
				tensorTables = append(tensorTables, tensorTable(fmt.Sprintf("tensors of %s, %s", d, label), p.Rows()))
			}
		}
		f.Close()
	}
	tot.Title = "plan of " + desc
	chart.Title = "placement of " + desc
	for _, bt := range typeOrder {
		chart.Series = append(chart.Series, result.Series{Name: bt, Y: byType[bt]})
	}
	rec := &Record{Tables: append([]*result.Table{tot}, tensorTables...), Charts: []*result.Chart{chart},
		Context: map[string]any{"source": c.Str("source"), "plans": summaries}}
	c.emit(rec)
	return nil
}

// tensorTable renders placement rows: name, type, shape, MiB, buffer type, consuming op, reason.
func tensorTable(title string, rows []placement.TensorRow) *result.Table {
	t := result.NewTable(title, "tensor", "type", "shape", "size:MiB", "packed:MiB", "buffer type", "op", "reason")
	for _, r := range rows {
		t.Add(r.Name, r.Type, r.Shape, r.MiB, placement.MiB(r.PackedBytes), r.BufferType, r.Op, r.Reason)
	}
	return t
}
