package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"tilelab/workbench"
)

func init() {
	register("run", "run a .tlab script headless; write report.md, results.json and charts", runScript)
}

const runUsage = `usage: tilelab run FILE.tlab [--out DIR] [key=value...]

Runs the script with the workbench's language, as a notebook would, printing tables as text. key=value pairs
override the script's "param" defaults. Writes DIR/report.md, DIR/results.json and the charts (PNG and SVG);
DIR defaults to results/NAME where NAME is the script's name without .tlab.
`

func runScript(args []string, stdout, stderr io.Writer) error {
	var file, out string
	params := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help" || a == "-help":
			fmt.Fprint(stdout, runUsage)
			return nil
		case a == "--out" || a == "-out" || a == "-o":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr, "tilelab run: %s needs a folder\n%s", a, runUsage)
				return errUsage
			}
			i++
			out = args[i]
		case strings.HasPrefix(a, "--out=") || strings.HasPrefix(a, "-out="):
			out = a[strings.IndexByte(a, '=')+1:]
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "tilelab run: unknown flag %s\n%s", a, runUsage)
			return errUsage
		case strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			params[k] = v
		case file == "":
			file = a
		default:
			fmt.Fprintf(stderr, "tilelab run: one script at a time (got %s and %s)\n%s", file, a, runUsage)
			return errUsage
		}
	}
	if file == "" {
		fmt.Fprint(stderr, runUsage)
		return errUsage
	}
	if out == "" {
		out = filepath.Join("results", strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s := workbench.New(workbench.Options{Version: Version, Commit: commit()})
	start := time.Now()
	runErr := s.RunFile(ctx, file, params, workbench.TextOutput{Stdout: stdout, Stderr: stderr})
	if runErr != nil && len(s.Results()) == 0 {
		// Nothing to report (an unreadable script, an undeclared parameter, a first command that failed):
		// an empty report folder would only look like a result.
		return describeRunError(runErr)
	}
	// Whatever ran is reported, even when the script failed or was interrupted part way.
	files, err := s.WriteReport(out, "TileLab: "+filepath.Base(file))
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	fmt.Fprintf(stderr, "%s: %d result(s) in %.1fs; wrote %s into %s\n", filepath.Base(file), len(s.Results()), time.Since(start).Seconds(), strings.Join(files, ", "), out)
	if runErr != nil {
		return describeRunError(runErr)
	}
	return nil
}

// describeRunError shows a workbench error as a notebook would: its traceback names the line and the token.
func describeRunError(err error) error {
	var we *workbench.Error
	if errors.As(err, &we) {
		return errors.New(strings.Join(we.Traceback(), "\n"))
	}
	return err
}
