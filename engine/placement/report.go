package placement

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// MiB converts bytes to mebibytes, the unit of every buffer table (the seed's and llama.cpp's).
func MiB(b int64) float64 { return float64(b) / (1 << 20) }

// Total is one buffer type's share of a plan.
type Total struct {
	BufferType  string  `json:"buffer_type"`
	Count       int     `json:"tensors"`
	Bytes       int64   `json:"bytes"`        // GGUF bytes of the weights placed here
	PackedBytes int64   `json:"packed_bytes"` // their size once stored here
	MiB         float64 `json:"mib"`
	PackedMiB   float64 `json:"packed_mib"`
}

// Totals sums the plan per buffer type, every registered buffer type in registry order (a type that received
// nothing has Count 0, so tables of several plans line up), then any type a decision names that the registry
// did not list.
func (p *Plan) Totals() []Total {
	idx := map[string]int{}
	var ts []Total
	add := func(name string) int {
		i, ok := idx[name]
		if !ok {
			i = len(ts)
			idx[name] = i
			ts = append(ts, Total{BufferType: name})
		}
		return i
	}
	for _, n := range p.BufferTypes {
		add(n)
	}
	for _, d := range p.Decisions {
		t := &ts[add(d.BufferType)]
		t.Count++
		t.Bytes += d.Bytes
		t.PackedBytes += d.PackedBytes
	}
	for i := range ts {
		ts[i].MiB, ts[i].PackedMiB = MiB(ts[i].Bytes), MiB(ts[i].PackedBytes)
	}
	return ts
}

// Lookup finds the decision for a weight by its GGUF name.
func (p *Plan) Lookup(name string) (Decision, bool) {
	for _, d := range p.Decisions {
		if d.Weight.Name == name {
			return d, true
		}
	}
	return Decision{}, false
}

// TensorRow is one line of the per-tensor table, as the workbench and `plan --tensors` show it.
type TensorRow struct {
	Name        string  `json:"name"`
	Type        string  `json:"type"`
	Shape       string  `json:"shape"`
	Bytes       int64   `json:"bytes"`
	PackedBytes int64   `json:"packed_bytes"`
	MiB         float64 `json:"mib"`
	BufferType  string  `json:"buffer_type"`
	Op          string  `json:"op"`
	Reason      string  `json:"reason"`
}

// Shape formats ne like "[2048 4096]", dropping trailing ones.
func Shape(ne [4]int) string {
	n := 4
	for n > 1 && ne[n-1] <= 1 {
		n--
	}
	return fmt.Sprint(ne[:n])
}

// Rows lists the plan's decisions as table rows, in the order the weights were given.
func (p *Plan) Rows() []TensorRow {
	rows := make([]TensorRow, len(p.Decisions))
	for i, d := range p.Decisions {
		w := d.Weight
		rows[i] = TensorRow{
			Name: w.Name, Type: w.Type.String(), Shape: Shape(w.Ne), Bytes: d.Bytes, PackedBytes: d.PackedBytes,
			MiB: MiB(d.Bytes), BufferType: d.BufferType, Op: w.Op.String(), Reason: d.Reason,
		}
	}
	return rows
}

// WriteTotals prints one line per buffer type that received weights, in the seed's style:
//
//	AMX          486.0 MiB   (packed 486.0 MiB)   192 tensors
//
// The packed size is always shown, so a repacking buffer type stands out by the difference.
func (p *Plan) WriteTotals(w io.Writer) error {
	var sum, packed int64
	var n int
	for _, t := range p.Totals() {
		if t.Count == 0 {
			continue
		}
		sum += t.Bytes
		packed += t.PackedBytes
		n += t.Count
		if _, err := fmt.Fprintf(w, "%-10s %10.1f MiB   (packed %9.1f MiB)   %4d tensors\n", t.BufferType, t.MiB, t.PackedMiB, t.Count); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%-10s %10.1f MiB   (packed %9.1f MiB)   %4d tensors\n", "total", MiB(sum), MiB(packed), n)
	return err
}

// WriteTensors prints the per-tensor table: name, type, shape, MiB, buffer type, consuming op, reason.
func (p *Plan) WriteTensors(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\ttype\tshape\tMiB\tbuffer\top\treason")
	for _, r := range p.Rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t%s\n", r.Name, r.Type, r.Shape, r.MiB, r.BufferType, r.Op, r.Reason)
	}
	return tw.Flush()
}

// Summary is a one-line account of the plan: "amx=attn ngl=12 gpu=on: AMX 364.5 MiB, CUDA_Host ..., CUDA0 ...".
func (p *Plan) Summary() string {
	var parts []string
	for _, t := range p.Totals() {
		if t.Count > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f MiB", t.BufferType, t.MiB))
		}
	}
	return p.Options.String() + ": " + strings.Join(parts, ", ")
}

// Move is one weight that two plans put in different buffer types.
type Move struct {
	Name       string `json:"name"`
	From       string `json:"from"`
	To         string `json:"to"`
	Bytes      int64  `json:"bytes"`
	FromReason string `json:"from_reason"`
	ToReason   string `json:"to_reason"`
}

// Diff lists the weights whose buffer type differs between plans a and b (of the same model, under different
// options), in a's order. A weight present in only one plan is an error: the plans are not of the same model.
func Diff(a, b *Plan) ([]Move, error) {
	bi := make(map[string]int, len(b.Decisions))
	for i, d := range b.Decisions {
		bi[d.Weight.Name] = i
	}
	if len(a.Decisions) != len(b.Decisions) {
		return nil, fmt.Errorf("the plans place %d and %d weights: they are not of the same model", len(a.Decisions), len(b.Decisions))
	}
	var moves []Move
	for _, da := range a.Decisions {
		i, ok := bi[da.Weight.Name]
		if !ok {
			return nil, fmt.Errorf("weight %s is in the first plan only: the plans are not of the same model", da.Weight.Name)
		}
		db := b.Decisions[i]
		if da.BufferType != db.BufferType {
			moves = append(moves, Move{Name: da.Weight.Name, From: da.BufferType, To: db.BufferType, Bytes: da.Bytes,
				FromReason: da.Reason, ToReason: db.Reason})
		}
	}
	return moves, nil
}
