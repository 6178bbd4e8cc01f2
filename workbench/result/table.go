// Package result holds what workbench commands produce — tables and charts — and renders them as Jupyter MIME
// bundles: aligned text, HTML, JSON records, SVG and PNG.
package result

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"tilelab/kernel"
)

// Column is one column of a table. Unit is shown in the header ("pp512 (tok/s)") and kept in the JSON schema, so
// cells hold plain numbers.
type Column struct {
	Name string
	Unit string
}

// Header is the column's title with its unit.
func (c Column) Header() string {
	if c.Unit == "" {
		return c.Name
	}
	return c.Name + " (" + c.Unit + ")"
}

// Measure is a timing over repetitions: mean and standard deviation, with the raw values kept for saving.
type Measure struct {
	Mean float64   `json:"mean"`
	SD   float64   `json:"sd"`
	N    int       `json:"n"`
	Raw  []float64 `json:"raw,omitempty"`
}

// NewMeasure summarises repetitions (sample standard deviation, 0 for a single value).
func NewMeasure(raw []float64) Measure {
	m := Measure{N: len(raw), Raw: append([]float64(nil), raw...)}
	if len(raw) == 0 {
		return m
	}
	for _, x := range raw {
		m.Mean += x
	}
	m.Mean /= float64(len(raw))
	if len(raw) > 1 {
		var ss float64
		for _, x := range raw {
			ss += (x - m.Mean) * (x - m.Mean)
		}
		m.SD = math.Sqrt(ss / float64(len(raw)-1))
	}
	return m
}

// String shows mean ± sd with the mean's precision for both, as llama-bench does. One repetition has no spread
// to show; "± 0" would claim a perfectly steady measurement, so it shows the value alone.
func (m Measure) String() string {
	d := decimals(m.Mean)
	if m.N == 1 {
		return fmt.Sprintf("%.*f", d, m.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f", d, m.Mean, d, m.SD)
}

// decimals is how many decimals formatFloat shows for a number of this size.
func decimals(f float64) int {
	switch a := math.Abs(f); {
	case a >= 1000:
		return 0
	case a >= 100:
		return 1
	case a >= 1 || a == 0:
		return 2
	}
	return 4
}

// Table is rows of cells under named columns. A cell is a string, an integer, a float64, a bool, a
// time.Duration, a Measure or nil (an empty cell).
type Table struct {
	Title   string
	Columns []Column
	Rows    [][]any
	// Notes are shown under the table: unavailable modes and why, what was skipped, where a result was cut short.
	Notes []string
}

// NewTable starts a table with the given columns, each "name" or "name:unit".
func NewTable(title string, columns ...string) *Table {
	t := &Table{Title: title}
	for _, c := range columns {
		name, unit, _ := strings.Cut(c, ":")
		t.Columns = append(t.Columns, Column{Name: name, Unit: unit})
	}
	return t
}

// Add appends a row; it must have one cell per column.
func (t *Table) Add(cells ...any) {
	if len(cells) != len(t.Columns) {
		panic(fmt.Sprintf("result: row of %d cells for %d columns in %q", len(cells), len(t.Columns), t.Title))
	}
	t.Rows = append(t.Rows, cells)
}

// Note adds a line under the table.
func (t *Table) Note(format string, args ...any) {
	t.Notes = append(t.Notes, fmt.Sprintf(format, args...))
}

// Format renders one cell as text.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "on"
		}
		return "off"
	case float64:
		return formatFloat(x)
	case float32:
		return formatFloat(float64(x))
	case time.Duration:
		return x.String()
	case Measure:
		return x.String()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// formatFloat shows about four significant digits without exponent for the sizes tables hold.
func formatFloat(f float64) string {
	a := math.Abs(f)
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return fmt.Sprint(f)
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", f)
	case a >= 100:
		return fmt.Sprintf("%.1f", f)
	case a >= 1:
		return fmt.Sprintf("%.2f", f)
	case a >= 0.001:
		return fmt.Sprintf("%.4f", f)
	}
	return fmt.Sprintf("%.3g", f)
}

func numeric(v any) bool {
	switch v.(type) {
	case int, int64, int32, uint, uint64, uint32, float64, float32, Measure, time.Duration:
		return true
	}
	return false
}

// Text renders the table with aligned columns: numbers to the right, text to the left.
func (t *Table) Text() string {
	cells := make([][]string, len(t.Rows))
	width := make([]int, len(t.Columns))
	right := make([]bool, len(t.Columns))
	for j, c := range t.Columns {
		width[j] = len([]rune(c.Header()))
		right[j] = len(t.Rows) > 0
	}
	for i, row := range t.Rows {
		cells[i] = make([]string, len(row))
		for j, v := range row {
			cells[i][j] = Format(v)
			width[j] = max(width[j], len([]rune(cells[i][j])))
			if v != nil && !numeric(v) {
				right[j] = false
			}
		}
	}
	var b strings.Builder
	if t.Title != "" {
		b.WriteString(t.Title + "\n")
	}
	line := func(vals []string) {
		var parts []string
		for j, s := range vals {
			pad := strings.Repeat(" ", width[j]-len([]rune(s)))
			if right[j] {
				parts = append(parts, pad+s)
			} else {
				parts = append(parts, s+pad)
			}
		}
		b.WriteString(strings.TrimRight(strings.Join(parts, "  "), " ") + "\n")
	}
	hdr := make([]string, len(t.Columns))
	rule := make([]string, len(t.Columns))
	for j, c := range t.Columns {
		hdr[j] = c.Header()
		rule[j] = strings.Repeat("-", width[j])
	}
	line(hdr)
	line(rule)
	for _, r := range cells {
		line(r)
	}
	for _, n := range t.Notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

// HTML renders the table as an HTML fragment with a caption.
func (t *Table) HTML() string {
	var b strings.Builder
	b.WriteString("<table>\n")
	if t.Title != "" {
		b.WriteString("<caption>" + html.EscapeString(t.Title) + "</caption>\n")
	}
	b.WriteString("<thead><tr>")
	for _, c := range t.Columns {
		b.WriteString("<th>" + html.EscapeString(c.Header()) + "</th>")
	}
	b.WriteString("</tr></thead>\n<tbody>\n")
	for _, row := range t.Rows {
		b.WriteString("<tr>")
		for _, v := range row {
			if numeric(v) {
				b.WriteString(`<td style="text-align:right">`)
			} else {
				b.WriteString(`<td style="text-align:left">`)
			}
			b.WriteString(html.EscapeString(Format(v)) + "</td>")
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n")
	for _, n := range t.Notes {
		b.WriteString("<p>" + html.EscapeString(n) + "</p>\n")
	}
	return b.String()
}

// Records returns the rows as JSON-ready records keyed by column name: numbers stay numbers, a Measure becomes
// {"mean", "sd", "n", "raw"}, a duration becomes seconds.
func (t *Table) Records() []map[string]any {
	out := make([]map[string]any, len(t.Rows))
	for i, row := range t.Rows {
		rec := make(map[string]any, len(row))
		for j, v := range row {
			rec[t.Columns[j].Name] = jsonValue(v)
		}
		out[i] = rec
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Duration:
		return x.Seconds()
	case float64:
		return jsonFloat(x)
	case float32:
		return jsonFloat(float64(x))
	case Measure:
		// A NaN repetition must not make the whole bundle unencodable (the kernel would drop the table).
		raw := make([]any, len(x.Raw))
		for i, r := range x.Raw {
			raw[i] = jsonFloat(r)
		}
		return map[string]any{"mean": jsonFloat(x.Mean), "sd": jsonFloat(x.SD), "n": x.N, "raw": raw}
	case fmt.Stringer:
		return x.String()
	}
	return v
}

// jsonFloat keeps a float as a number, or NaN and ±Inf visible as text: JSON has no number for them.
func jsonFloat(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return f
}

// Schema describes the columns for JSON consumers: name and unit of each.
func (t *Table) Schema() []map[string]string {
	out := make([]map[string]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = map[string]string{"name": c.Name, "unit": c.Unit}
	}
	return out
}

// Bundle renders the table as a MIME bundle: text/plain, text/html and application/json (the records).
func (t *Table) Bundle() kernel.Bundle {
	return kernel.Bundle{
		Data: map[string]any{
			"text/plain":       t.Text(),
			"text/html":        t.HTML(),
			"application/json": t.Records(),
		},
		Metadata: map[string]any{"application/json": map[string]any{"title": t.Title, "columns": t.Schema()}},
	}
}

// MarshalJSON writes the table with its schema, records and notes, as `save` stores it.
func (t *Table) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"title": t.Title, "columns": t.Schema(), "records": t.Records(), "notes": t.Notes})
}

// CSV renders the table as CSV with unit-bearing headers; a Measure becomes two columns, mean and sd.
func (t *Table) CSV() [][]string {
	hasMeasure := make([]bool, len(t.Columns))
	for _, row := range t.Rows {
		for j, v := range row {
			if _, ok := v.(Measure); ok {
				hasMeasure[j] = true
			}
		}
	}
	var hdr []string
	for j, c := range t.Columns {
		if hasMeasure[j] {
			hdr = append(hdr, c.Header()+" mean", c.Header()+" sd")
		} else {
			hdr = append(hdr, c.Header())
		}
	}
	out := [][]string{hdr}
	for _, row := range t.Rows {
		var rec []string
		for j, v := range row {
			switch {
			case hasMeasure[j]:
				if m, ok := v.(Measure); ok {
					rec = append(rec, fmt.Sprint(m.Mean), fmt.Sprint(m.SD))
				} else {
					rec = append(rec, Format(v), "")
				}
			default:
				if f, ok := v.(float64); ok {
					rec = append(rec, fmt.Sprint(f)) // full precision for the file
				} else {
					rec = append(rec, Format(v))
				}
			}
		}
		out = append(out, rec)
	}
	return out
}

// Markdown renders the table as a GitHub-flavoured Markdown table with its title as a heading line.
func (t *Table) Markdown() string {
	var b strings.Builder
	if t.Title != "" {
		b.WriteString("**" + t.Title + "**\n\n")
	}
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("|")
	for _, c := range t.Columns {
		b.WriteString(" " + esc(c.Header()) + " |")
	}
	b.WriteString("\n|")
	b.WriteString(strings.Repeat("---|", len(t.Columns)))
	b.WriteString("\n")
	for _, row := range t.Rows {
		b.WriteString("|")
		for _, v := range row {
			b.WriteString(" " + esc(Format(v)) + " |")
		}
		b.WriteString("\n")
	}
	for _, n := range t.Notes {
		b.WriteString("\n" + n + "\n")
	}
	return b.String()
}
