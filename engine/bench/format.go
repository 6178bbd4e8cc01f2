package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// Formats lists the output formats Write understands.
var Formats = []string{"md", "json", "csv"}

// Write renders the result as a markdown table, JSON (with the environment and raw repetitions) or CSV.
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case "md", "markdown":
		return r.WriteMarkdown(w)
	case "json":
		return r.WriteJSON(w)
	case "csv":
		return r.WriteCSV(w)
	}
	return fmt.Errorf("bench: unknown format %q (want md, json or csv)", format)
}

// WriteMarkdown writes llama-bench's table: one line per test, t/s as mean ± sd, skipped modes with their reason.
func (r *Result) WriteMarkdown(w io.Writer) error {
	head := []string{"model", "size", "params", "mode", "amx", "ngl", "threads", "test", "t/s"}
	right := []bool{false, true, true, false, false, true, true, true, true}
	// llama-bench shows the cache types only when one is not its default; so does this table.
	kvCol := false
	for _, x := range r.Rows {
		kvCol = kvCol || (x.TypeK != "" && x.TypeK != "f32") || (x.TypeV != "" && x.TypeV != "f32")
	}
	if kvCol {
		head = append(head[:7], append([]string{"type_k", "type_v"}, head[7:]...)...)
		right = append(right[:7], append([]bool{false, false}, right[7:]...)...)
	}
	rows := [][]string{}
	for _, x := range r.Rows {
		ts := fmt.Sprintf("%.2f ± %.2f", x.AvgTs, x.SDTs)
		switch {
		case x.Skipped != "":
			ts = "skipped: " + x.Skipped
		case len(x.Samples) == 0:
			ts = "interrupted before any repetition"
		case x.Partial:
			ts += fmt.Sprintf(" (interrupted, %d reps)", len(x.Samples))
		}
		cells := []string{filepath.Base(x.Model) + " (" + x.Arch + ")", sizeString(x.Size), paramString(x.Params),
			string(x.Mode), x.AMX, strconv.Itoa(x.NGL), strconv.Itoa(x.Threads), x.Test, ts}
		if kvCol {
			cells = append(cells[:7], append([]string{x.TypeK, x.TypeV}, cells[7:]...)...)
		}
		rows = append(rows, cells)
	}
	width := make([]int, len(head))
	for i, h := range head {
		width[i] = len([]rune(h))
		for _, row := range rows {
			width[i] = max(width[i], len([]rune(row[i])))
		}
	}
	line := func(cells []string) string {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if right[i] {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		return b.String() + "\n"
	}
	var b strings.Builder
	b.WriteString(line(head))
	b.WriteString("|")
	for i := range head {
		d := strings.Repeat("-", width[i])
		if right[i] {
			d = d[1:] + ":"
		}
		b.WriteString(" " + d + " |")
	}
	b.WriteString("\n")
	for _, row := range rows {
		b.WriteString(line(row))
	}
	for _, x := range r.Rows {
		if x.Warning != "" {
			fmt.Fprintf(&b, "\nwarning, %s %s (%d threads): %s", x.Mode, x.Test, x.Threads, x.Warning)
		}
	}
	fmt.Fprintf(&b, "\nCPU: %s (%d CPUs), kernels %s, %s, commit %s\n", r.Env.CPU, r.Env.CPUs, r.Env.Kernels, r.Env.GoVersion, r.Env.Commit)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the environment and every row with its raw repetitions.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes one line per row with llama-bench's column names; the raw repetitions are space-separated.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"build_commit", "cpu_info", "cpu_kernels", "model_filename", "model_type", "model_size",
		"model_n_params", "mode", "amx", "n_gpu_layers", "n_threads", "test", "n_prompt", "n_gen", "n_ctx", "n_batch",
		"test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts", "skipped", "partial",
		"cpus_used", "major_faults", "warning", "type_k", "type_v"})
	for _, x := range r.Rows {
		ns := make([]string, len(x.Samples))
		for i, v := range x.Samples {
			ns[i] = strconv.FormatInt(v, 10)
		}
		ts := make([]string, len(x.SamplesT))
		for i, v := range x.SamplesT {
			ts[i] = strconv.FormatFloat(v, 'f', 6, 64)
		}
		cw.Write([]string{r.Env.Commit, r.Env.CPU, x.Kernel, x.Model, x.Arch, strconv.FormatInt(x.Size, 10),
			strconv.FormatInt(x.Params, 10), string(x.Mode), x.AMX, strconv.Itoa(x.NGL), strconv.Itoa(x.Threads), x.Test,
			strconv.Itoa(x.NPrompt), strconv.Itoa(x.NGen), strconv.Itoa(x.Ctx), strconv.Itoa(x.Batch),
			x.When.UTC().Format("2006-01-02T15:04:05Z"), strconv.FormatFloat(x.AvgNs, 'f', 0, 64),
			strconv.FormatFloat(x.SDNs, 'f', 0, 64), strconv.FormatFloat(x.AvgTs, 'f', 6, 64),
			strconv.FormatFloat(x.SDTs, 'f', 6, 64), strings.Join(ns, " "), strings.Join(ts, " "), x.Skipped,
			strconv.FormatBool(x.Partial), strconv.FormatFloat(x.CPUs, 'f', 2, 64), strconv.FormatInt(x.MajorFaults, 10), x.Warning, x.TypeK, x.TypeV})
	}
	cw.Flush()
	return cw.Error()
}

func sizeString(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f KiB", float64(b)/(1<<10))
}

func paramString(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f B", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f K", float64(n)/1e3)
}
