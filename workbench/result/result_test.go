package result

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func sampleTable() *Table {
	t := NewTable("bench moe", "mode", "pp512:tok/s", "tg128:tok/s", "threads")
	t.Add("cpu", NewMeasure([]float64{80, 82, 78}), NewMeasure([]float64{28.2}), 16)
	t.Add("cpu+amx", NewMeasure([]float64{93.5, 92.5}), nil, 16)
	t.Note("cpu+gpu: no GPU here")
	return t
}

func TestTableText(t *testing.T) {
	got := sampleTable().Text()
	want := "bench moe\n" +
		"mode     pp512 (tok/s)  tg128 (tok/s)  threads\n" +
		"-------  -------------  -------------  -------\n" +
		"cpu       80.00 ± 2.00          28.20       16\n" +
		"cpu+amx   93.00 ± 0.71                      16\n" +
		"cpu+gpu: no GPU here\n"
	if got != want {
		t.Errorf("Text() =\n%s\nwant\n%s", got, want)
	}
}

func TestTableTextAlignsNumbersRight(t *testing.T) {
	tb := NewTable("", "name", "MiB:MiB")
	tb.Add("a", 1.5)
	tb.Add("bbbb", 1234.0)
	lines := strings.Split(strings.TrimSpace(tb.Text()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines: %q", len(lines), lines)
	}
	if !strings.HasSuffix(lines[2], " 1.50") || !strings.HasSuffix(lines[3], "1234") || len(lines[2]) != len(lines[3]) {
		t.Errorf("numbers not right-aligned:\n%s", tb.Text())
	}
}

func TestTableHTMLIsWellFormed(t *testing.T) {
	tb := sampleTable()
	tb.Add("<script>&", nil, nil, 1)
	h := tb.HTML()
	d := xml.NewDecoder(strings.NewReader("<div>" + h + "</div>"))
	cells := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("HTML is not well-formed: %v\n%s", err, h)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "td" {
			cells++
		}
	}
	if cells != 12 {
		t.Errorf("got %d cells, want 12", cells)
	}
	if !strings.Contains(h, "&lt;script&gt;&amp;") || !strings.Contains(h, "<caption>bench moe</caption>") {
		t.Errorf("HTML does not escape or caption:\n%s", h)
	}
}

func TestTableRecordsRoundTrip(t *testing.T) {
	tb := NewTable("t", "name", "n", "x:ms", "d", "m:tok/s", "flag")
	tb.Add("a", 3, 2.5, 1500*time.Millisecond, NewMeasure([]float64{1, 3}), true)
	data, err := json.Marshal(tb.Bundle().Data["application/json"])
	if err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	r := back[0]
	m := r["m"].(map[string]any)
	if r["name"] != "a" || r["n"] != 3.0 || r["x"] != 2.5 || r["d"] != 1.5 || r["flag"] != true || m["mean"] != 2.0 || m["sd"] != math.Sqrt2 {
		t.Errorf("records came back as %v", back)
	}
	raw := m["raw"].([]any)
	if len(raw) != 2 || raw[0] != 1.0 || raw[1] != 3.0 {
		t.Errorf("raw repetitions came back as %v", raw)
	}
}

func TestTableRecordsKeepNaNVisible(t *testing.T) {
	tb := NewTable("t", "x", "y", "z")
	tb.Add(math.NaN(), float32(math.Inf(1)), NewMeasure([]float64{1, math.NaN()}))
	data, err := json.Marshal(tb)
	if err != nil {
		t.Fatalf("a NaN cell broke JSON: %v", err)
	}
	if _, err := json.Marshal(tb.Bundle().Data); err != nil {
		t.Fatalf("a NaN cell broke the bundle's application/json: %v", err)
	}
	for _, want := range []string{`"x":"NaN"`, `"y":"+Inf"`, `"mean":"NaN"`, `"raw":[1,"NaN"]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON lacks %s: %s", want, data)
		}
	}
}

func TestTableCSVSplitsMeasures(t *testing.T) {
	got := sampleTable().CSV()
	if strings.Join(got[0], "|") != "mode|pp512 (tok/s) mean|pp512 (tok/s) sd|tg128 (tok/s) mean|tg128 (tok/s) sd|threads" {
		t.Errorf("header %q", got[0])
	}
	if strings.Join(got[1], "|") != "cpu|80|2|28.2|0|16" {
		t.Errorf("row %q", got[1])
	}
}

func TestTableMarkdown(t *testing.T) {
	got := sampleTable().Markdown()
	for _, want := range []string{"| mode | pp512 (tok/s) |", "|---|---|---|---|", "| cpu | 80.00 ± 2.00 |", "cpu+gpu: no GPU here"} {
		if !strings.Contains(got, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, got)
		}
	}
}

func TestNewMeasure(t *testing.T) {
	m := NewMeasure([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if m.Mean != 5 || math.Abs(m.SD-2.138) > 1e-3 || m.N != 8 {
		t.Errorf("NewMeasure = %+v", m)
	}
}

func TestAddPanicsOnWrongWidth(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a short row was accepted")
		}
	}()
	NewTable("t", "a", "b").Add(1)
}

func TestChartsRender(t *testing.T) {
	charts := []struct {
		name  string
		chart *Chart
	}{
		{"grouped bars show tok/s per mode", &Chart{Kind: Bars, Title: "bench", XLabel: "mode", YLabel: "tok/s",
			Categories: []string{"cpu", "cpu+amx", "cpu+gpu"}, Series: []Series{{Name: "pp512", Y: []float64{80, 93, math.NaN()}}, {Name: "tg128", Y: []float64{28, 31, 0}}}}},
		{"stacked bars show MiB per buffer", &Chart{Kind: StackedBars, Title: "buffers", XLabel: "plan", YLabel: "MiB",
			Categories: []string{"ngl=0", "ngl=12"}, Series: []Series{{Name: "CPU", Y: []float64{100, 50}}, {Name: "AMX", Y: []float64{900, 700}}}}},
		{"lines show TOPS over m", &Chart{Kind: Lines, Title: "matmul", XLabel: "m (rows)", YLabel: "TOPS", LogX: true,
			Series: []Series{{Name: "q8_0 amx", X: []float64{1, 16, 256}, Y: []float64{0.1, 2, 20}}}}},
		{"a heatmap shows TOPS over tiles", &Chart{Kind: Heatmap, Title: "tiles", XLabel: "kstep", YLabel: "rows", ZLabel: "TOPS",
			Z: [][]float64{{1, 2}, {3, math.NaN()}}, RowLabels: []string{"8", "16"}, ColLabels: []string{"32", "64"}, HighlightR: 1, HighlightC: 0}},
	}
	for _, tt := range charts {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.chart.Bundle()
			if err != nil {
				t.Fatal(err)
			}
			svg := b.Data["image/svg+xml"].(string)
			if !strings.Contains(svg, "<svg") || !strings.Contains(svg, tt.chart.Title) || len(svg) < 1000 {
				t.Errorf("SVG is empty or untitled (%d bytes)", len(svg))
			}
			png, err := base64.StdEncoding.DecodeString(b.Data["image/png"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
				t.Errorf("PNG is not a PNG or empty (%d bytes)", len(png))
			}
			if !strings.Contains(b.Data["text/plain"].(string), tt.chart.Title) {
				t.Errorf("text/plain stand-in lacks the title")
			}
		})
	}
}

func TestChartErrors(t *testing.T) {
	tests := []struct {
		name  string
		chart *Chart
		want  string
	}{
		{"bars without categories", &Chart{Kind: Bars, Title: "x"}, "needs categories"},
		{"a short series", &Chart{Kind: Bars, Title: "x", Categories: []string{"a", "b"}, Series: []Series{{Name: "s", Y: []float64{1}}}}, "1 values for 2 categories"},
		{"lines with mismatched points", &Chart{Kind: Lines, Title: "x", Series: []Series{{Name: "s", X: []float64{1}, Y: nil}}}, "1 x and 0 y"},
		{"a heatmap with wrong labels", &Chart{Kind: Heatmap, Title: "x", Z: [][]float64{{1}}}, "labels do not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := tt.chart.SVG()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestWrapWords(t *testing.T) {
	tests := []struct {
		name, in string
		width    int
		want     string
	}{
		{"a label that fits stays on one line", "cpu+amx", 12, "cpu+amx"},
		{"a long label breaks at spaces", "q4_0 amx=attn ngl=12 gpu=on", 14, "q4_0 amx=attn\nngl=12 gpu=on"},
		{"a word longer than the width keeps its own line", "cpu+gpu+amx ngl=12", 5, "cpu+gpu+amx\nngl=12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wrapWords(tt.in, tt.width); got != tt.want {
				t.Errorf("wrapWords(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
			}
		})
	}
}
