package result

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"tilelab/kernel"
)

// ChartKind is the shape of a chart.
type ChartKind int

// The chart kinds the workbench draws.
const (
	// Bars draws one bar per category for each series, grouped side by side (bench: tok/s per mode).
	Bars ChartKind = iota
	// StackedBars stacks the series on each category (buffers: MiB per buffer type).
	StackedBars
	// Lines draws each series as a line over X (matmul: TOPS against m).
	Lines
	// Heatmap colours a grid of Z values (tiles: TOPS over rows × kstep).
	Heatmap
)

// Series is one named set of values: Y per category for bars, (X, Y) points for lines.
type Series struct {
	Name string
	X    []float64
	Y    []float64
}

// Chart is a titled chart with labelled axes (labels carry their units).
type Chart struct {
	Kind       ChartKind
	Title      string
	XLabel     string
	YLabel     string
	Categories []string // bar categories along X
	Series     []Series
	LogX       bool // lines: log2 X axis, for sizes swept geometrically

	// Heatmap: Z[row][col], with the labels of rows (Y) and columns (X), and the unit of Z for the caption.
	Z          [][]float64
	RowLabels  []string
	ColLabels  []string
	ZLabel     string
	HighlightR int // the cell to mark (the best configuration); -1 for none
	HighlightC int
}

// Size of rendered charts.
const (
	chartW = 16 * vg.Centimeter
	chartH = 9 * vg.Centimeter
)

var seriesColors = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0xe3, 0x77, 0xc2, 0xff}, color.RGBA{0x7f, 0x7f, 0x7f, 0xff},
}

func (c *Chart) validate() error {
	switch c.Kind {
	case Bars, StackedBars:
		if len(c.Categories) == 0 || len(c.Series) == 0 {
			return errors.New("a bar chart needs categories and at least one series")
		}
		for _, s := range c.Series {
			if len(s.Y) != len(c.Categories) {
				return fmt.Errorf("series %q has %d values for %d categories", s.Name, len(s.Y), len(c.Categories))
			}
		}
	case Lines:
		if len(c.Series) == 0 {
			return errors.New("a line chart needs at least one series")
		}
		for _, s := range c.Series {
			if len(s.X) != len(s.Y) || len(s.X) == 0 {
				return fmt.Errorf("series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
			}
		}
	case Heatmap:
		if len(c.Z) == 0 || len(c.Z[0]) == 0 {
			return errors.New("a heatmap needs at least one cell")
		}
		for _, r := range c.Z {
			if len(r) != len(c.Z[0]) {
				return errors.New("heatmap rows differ in length")
			}
		}
		if len(c.RowLabels) != len(c.Z) || len(c.ColLabels) != len(c.Z[0]) {
			return errors.New("heatmap labels do not match its grid")
		}
	default:
		return fmt.Errorf("unknown chart kind %d", c.Kind)
	}
	return nil
}

// Plot builds the gonum plot.
func (c *Chart) Plot() (*plot.Plot, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("chart %q: %w", c.Title, err)
	}
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.Legend.Top = true
	switch c.Kind {
	case Bars, StackedBars:
		return p, c.bars(p)
	case Lines:
		return p, c.lines(p)
	default:
		return p, c.heatmap(p)
	}
}

func (c *Chart) bars(p *plot.Plot) error {
	n := len(c.Series)
	w := vg.Points(math.Max(4, 300/float64(len(c.Categories)*max(n, 1))))
	if c.Kind == StackedBars {
		w = vg.Points(math.Max(8, 240/float64(len(c.Categories))))
	}
	var below *plotter.BarChart
	for i, s := range c.Series {
		vals := make(plotter.Values, len(s.Y))
		for j, y := range s.Y {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				y = 0 // an unavailable mode draws as no bar; its row in the table says why
			}
			vals[j] = y
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color = seriesColors[i%len(seriesColors)]
		b.LineStyle.Width = 0
		if c.Kind == StackedBars {
			if below != nil {
				b.StackOn(below)
			}
			below = b
		} else {
			b.Offset = w * vg.Length(float64(i)-float64(n-1)/2)
		}
		p.Add(b)
		if n > 1 || s.Name != "" {
			p.Legend.Add(s.Name, b)
		}
	}
	// A category with no number at all (a mode this machine cannot run) says so where its bars would be.
	var na plotter.XYLabels
	for j := range c.Categories {
		missing := true
		for _, s := range c.Series {
			if y := s.Y[j]; !math.IsNaN(y) && !math.IsInf(y, 0) {
				missing = false
			}
		}
		if missing {
			na.XYs = append(na.XYs, plotter.XY{X: float64(j), Y: 0})
			na.Labels = append(na.Labels, "unavailable")
		}
	}
	if len(na.XYs) > 0 {
		l, err := plotter.NewLabels(na)
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign = draw.XCenter
			l.TextStyle[i].Color = color.Gray{0x60}
		}
		p.Add(l)
	}
	// Long category names (plan's "q4_0 amx=attn ngl=12 gpu=on") ran into each other: wrap each to its slot.
	perSlot := max(8, int(chartW.Points()/float64(len(c.Categories))/5.5)) // about 5.5 pt per character
	labels := make([]string, len(c.Categories))
	for j, cat := range c.Categories {
		labels[j] = wrapWords(cat, perSlot)
	}
	p.NominalX(labels...)
	p.Y.Min = 0
	// Headroom above the tallest bar keeps the legend (drawn at the top) off the bars.
	top := 0.0
	for j := range c.Categories {
		sum := 0.0
		for _, s := range c.Series {
			if y := s.Y[j]; !math.IsNaN(y) && !math.IsInf(y, 0) {
				if c.Kind == StackedBars {
					sum += y
				} else {
					sum = math.Max(sum, y)
				}
			}
		}
		top = math.Max(top, sum)
	}
	if top > 0 {
		p.Y.Max = top * (1.15 + 0.08*float64(len(c.Series)))
	}
	return nil
}

// wrapWords breaks s at spaces into lines of at most width characters where it can (a longer word keeps its line).
func wrapWords(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	return strings.Join(append(lines, line), "\n")
}

func (c *Chart) lines(p *plot.Plot) error {
	p.Legend.Left = true // lines of throughput rise to the right
	if c.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for i, s := range c.Series {
		pts := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			if math.IsNaN(s.Y[j]) || math.IsInf(s.Y[j], 0) || c.LogX && s.X[j] <= 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: s.X[j], Y: s.Y[j]})
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		col := seriesColors[i%len(seriesColors)]
		l.Color, sc.Color = col, col
		sc.Shape = draw.CircleGlyph{}
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
	}
	return nil
}

type grid struct{ z [][]float64 }

func (g grid) Dims() (int, int)   { return len(g.z[0]), len(g.z) }
func (g grid) Z(c, r int) float64 { return g.z[r][c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }
func (g grid) Min() float64       { lo, _ := g.span(); return lo }
func (g grid) Max() float64       { _, hi := g.span(); return hi }
func (g grid) span() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, r := range g.z {
		for _, v := range r {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if lo > hi {
		return 0, 1
	}
	if lo == hi {
		hi = lo + 1
	}
	return lo, hi
}

func (c *Chart) heatmap(p *plot.Plot) error {
	// A diverging blue-red map keeps both ends dark enough for the labels drawn on the cells.
	cm := moreland.SmoothBlueRed()
	cm.SetMin(0)
	cm.SetMax(1)
	pal := cm.Palette(64)
	h := plotter.NewHeatMap(grid{c.Z}, pal)
	h.NaN = color.Gray{0xdd}
	p.Add(h)
	var labels plotter.XYLabels
	for r, row := range c.Z {
		for col, v := range row {
			txt := Format(v)
			if math.IsNaN(v) {
				txt = "n/a"
			}
			if r == c.HighlightR && col == c.HighlightC {
				txt = "best: " + txt
			}
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(col), Y: float64(r)})
			labels.Labels = append(labels.Labels, txt)
		}
	}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	lo, hi := grid{c.Z}.span()
	for i := range l.TextStyle {
		// White on the saturated ends of the map, black on its pale middle.
		l.TextStyle[i].Color = color.Black
		xy := labels.XYs[i]
		if v := c.Z[int(xy.Y)][int(xy.X)]; !math.IsNaN(v) {
			if f := (v - lo) / (hi - lo); f < 0.25 || f > 0.75 {
				l.TextStyle[i].Color = color.White
			}
		}
		l.TextStyle[i].XAlign = draw.XCenter
		l.TextStyle[i].YAlign = draw.YCenter
	}
	p.Add(l)
	p.NominalX(c.ColLabels...)
	p.NominalY(c.RowLabels...)
	if c.ZLabel != "" {
		p.Title.Text += " — cells: " + c.ZLabel
	}
	return nil
}

func (c *Chart) render(format string) ([]byte, error) {
	p, err := c.Plot()
	if err != nil {
		return nil, err
	}
	wt, err := p.WriterTo(chartW, chartH, format)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("chart %q: rendering %s: %w", c.Title, format, err)
	}
	return b.Bytes(), nil
}

// SVG renders the chart as an SVG document.
func (c *Chart) SVG() ([]byte, error) { return c.render("svg") }

// PNG renders the chart as a PNG image.
func (c *Chart) PNG() ([]byte, error) { return c.render("png") }

// Text is a plain-text stand-in for clients that show no images: the title and the data.
func (c *Chart) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[chart] %s", c.Title)
	switch c.Kind {
	case Bars, StackedBars:
		for _, s := range c.Series {
			var parts []string
			for j, y := range s.Y {
				v := Format(y)
				if math.IsNaN(y) {
					v = "n/a"
				}
				parts = append(parts, fmt.Sprintf("[%s] %s", c.Categories[j], v))
			}
			fmt.Fprintf(&b, "\n  %s: %s", s.Name, strings.Join(parts, ", "))
		}
	case Lines:
		for _, s := range c.Series {
			fmt.Fprintf(&b, "\n  %s: %d points", s.Name, len(s.X))
		}
	case Heatmap:
		fmt.Fprintf(&b, "\n  %d×%d grid of %s", len(c.Z), len(c.ColLabels), c.ZLabel)
	}
	return b.String()
}

// Bundle renders the chart as a MIME bundle with text/plain, image/svg+xml and image/png (base64, as Jupyter
// expects).
func (c *Chart) Bundle() (kernel.Bundle, error) {
	svg, err := c.SVG()
	if err != nil {
		return kernel.Bundle{}, err
	}
	png, err := c.PNG()
	if err != nil {
		return kernel.Bundle{}, err
	}
	return kernel.Bundle{
		Data: map[string]any{
			"text/plain":    c.Text(),
			"image/svg+xml": string(svg),
			"image/png":     base64.StdEncoding.EncodeToString(png),
		},
		Metadata: map[string]any{},
	}, nil
}
