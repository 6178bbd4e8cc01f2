package workbench

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"tilelab/workbench/lang"
	"tilelab/workbench/result"
)

func init() {
	register(&command{group: "session", run: runSave, spec: &lang.Spec{
		Name: "save", Summary: "write results with their environment (.json, .csv, .md)",
		Doc: "`.json` keeps every table as records with its raw repetitions, the environment (CPU, AMX, GPU, OS, " +
			"Go, TileLab commit, threads) and each result's context (model path and SHA-256, placement summary). " +
			"`.csv` keeps the tables only; `.md` is a report with the charts written beside it as PNG. " +
			"Relative paths go into the folder `set out=` names.",
		Example: "save results/seed-table.json what=all",
		Params: []lang.Param{
			{Name: "file", Kind: lang.Path, Positional: true, Required: true, Doc: "where to write; the extension picks the format"},
			{Name: "what", Kind: lang.Enum, Default: "last", Allowed: []string{"last", "all"}, Doc: "the last result or every result of the session"},
		},
	}})
}

func runSave(c *ctxCall) error {
	recs := c.s.results
	if c.Str("what") == "last" && len(recs) > 0 {
		recs = recs[len(recs)-1:]
	}
	if len(recs) == 0 {
		return c.errAt("file", "run a command that shows a table first", "nothing to save yet")
	}
	name := c.Str("file")
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.s.settings.Out, name)
	}
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".json" && ext != ".csv" && ext != ".md" {
		return c.errAt("file", "name it .json, .csv or .md", "cannot tell the format of '%s'", name)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return c.errAt("file", "", "cannot create the folder: %v", err)
	}
	var err error
	var extra []string
	switch ext {
	case ".json":
		err = writeJSON(path, c.s, recs)
	case ".csv":
		err = writeCSV(path, recs)
	case ".md":
		extra, err = writeMarkdown(path, c.s, recs)
	}
	if err != nil {
		return c.errAt("file", "", "cannot save: %v", err)
	}
	msg := fmt.Sprintf("saved %d result(s) to %s", len(recs), path)
	if len(extra) > 0 {
		msg += fmt.Sprintf(" and %d chart(s) beside it", len(extra))
	}
	c.out.Stream("stdout", msg+"\n")
	return nil
}

// document is what a .json file holds.
type document struct {
	TileLab     string            `json:"tilelab"`
	Saved       time.Time         `json:"saved"`
	Environment map[string]string `json:"environment"`
	Results     []savedRecord     `json:"results"`
}

type savedRecord struct {
	Command string          `json:"command"`
	Written string          `json:"written,omitempty"`
	Time    time.Time       `json:"time"`
	Partial bool            `json:"partial,omitempty"`
	Tables  []*result.Table `json:"tables"`
	Charts  []string        `json:"charts,omitempty"`
	Context map[string]any  `json:"context,omitempty"`
	Raw     any             `json:"raw,omitempty"`
}

func (s *Session) document(recs []*Record) document {
	d := document{TileLab: s.opts.Version + " " + s.opts.Commit, Saved: time.Now().UTC(), Environment: envMap(s.environment())}
	for _, r := range recs {
		sr := savedRecord{Command: r.Command, Written: r.Written, Time: r.Time.UTC(), Partial: r.Partial, Tables: r.Tables, Context: r.Context, Raw: r.Raw}
		if sr.Tables == nil {
			sr.Tables = []*result.Table{}
		}
		for _, ch := range r.Charts {
			sr.Charts = append(sr.Charts, ch.Title)
		}
		d.Results = append(d.Results, sr)
	}
	return d
}

func writeJSON(path string, s *Session, recs []*Record) error {
	data, err := json.MarshalIndent(s.document(recs), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// writeCSV writes one table as plain CSV; several tables go one after another, each under a row holding its
// title and separated by an empty row.
func writeCSV(path string, recs []*Record) error {
	var tables []*result.Table
	for _, r := range recs {
		tables = append(tables, r.Tables...)
	}
	if len(tables) == 0 {
		return errors.New("the result has no table")
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	for i, t := range tables {
		if len(tables) > 1 {
			if i > 0 {
				w.Write(nil)
			}
			w.Write([]string{t.Title})
		}
		w.WriteAll(t.CSV())
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// chartFiles writes each chart as PNG and SVG into dir and returns the PNG names, relative to dir.
func chartFiles(dir, prefix string, recs []*Record) (map[*result.Chart]string, []string, error) {
	names := map[*result.Chart]string{}
	var written []string
	n := 0
	for _, r := range recs {
		for _, ch := range r.Charts {
			n++
			slug := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(ch.Title), "-"), "-")
			if len(slug) > 32 {
				slug = slug[:32]
			}
			slug = strings.TrimRight(slug, "-.")
			base := fmt.Sprintf("%s%02d-%s", prefix, n, slug)
			png, err := ch.PNG()
			if err != nil {
				return nil, nil, err
			}
			svg, err := ch.SVG()
			if err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, base+".png"), png, 0o644); err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, base+".svg"), svg, 0o644); err != nil {
				return nil, nil, err
			}
			names[ch] = base + ".png"
			written = append(written, base+".png", base+".svg")
		}
	}
	return names, written, nil
}

// markdownReport renders results with their environment; chart images are linked by the names given.
func (s *Session) markdownReport(title string, recs []*Record, charts map[*result.Chart]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	b.WriteString("## Environment\n\n| what | value |\n|---|---|\n")
	for _, e := range s.environment() {
		fmt.Fprintf(&b, "| %s | %s |\n", e.Key, strings.ReplaceAll(e.Value, "|", `\|`))
	}
	for _, r := range recs {
		fmt.Fprintf(&b, "\n## `%s`\n\n", r.Command)
		if r.Written != "" {
			fmt.Fprintf(&b, "As written: `%s`\n\n", r.Written)
		}
		if r.Partial {
			b.WriteString("*Interrupted: partial result.*\n\n")
		}
		for _, t := range r.Tables {
			b.WriteString(t.Markdown() + "\n")
		}
		for _, ch := range r.Charts {
			if n, ok := charts[ch]; ok {
				fmt.Fprintf(&b, "![%s](%s)\n\n", ch.Title, n)
			}
		}
	}
	return b.String()
}

func writeMarkdown(path string, s *Session, recs []*Record) ([]string, error) {
	prefix := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + "-"
	charts, written, err := chartFiles(filepath.Dir(path), prefix, recs)
	if err != nil {
		return nil, err
	}
	title := "TileLab results"
	return written, os.WriteFile(path, []byte(s.markdownReport(title, recs, charts)), 0o644)
}

// WriteReport writes every result of the session into dir as report.md (environment, each command with its
// tables and charts), results.json (as `save` writes it) and the charts as PNG and SVG. It returns the files
// written, relative to dir.
func (s *Session) WriteReport(dir, title string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	charts, written, err := chartFiles(dir, "chart-", s.results)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(s.markdownReport(title, s.results, charts)), 0o644); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, "results.json"), s, s.results); err != nil {
		return nil, err
	}
	return append([]string{"report.md", "results.json"}, written...), nil
}
