package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"tilelab/kernel"
	"tilelab/workbench"
)

func init() {
	register("env", "the machine: CPU and flags, AMX and whether the OS granted it, GPUs or why none, OS, Go, TileLab", runEnv)
}

// discard is a kernel.Output that shows nothing: --json prints the record instead of the table.
type discard struct{ workbench.TextOutput }

func (discard) Display(kernel.Bundle, string) {}
func (discard) Result(kernel.Bundle)          {}
func (discard) Stream(string, string)         {}

// runEnv asks the workbench's `env` command, so the terminal, notebooks and saved results describe a machine
// in the same words.
func runEnv(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the facts as one JSON object (as results.json records them)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tilelab env [--json]")
		fmt.Fprintln(stderr, "\nThe machine as TileLab sees it: CPU model, cores, AVX2/AVX-512 VNNI/BF16 and AMX tile/int8/bf16 flags,")
		fmt.Fprintln(stderr, "whether the OS granted AMX tile state, NUMA nodes, memory, GPUs or why none, OS, Go and TileLab versions.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tilelab env: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	s := workbench.New(workbench.Options{Version: Version, Commit: commit()})
	var out kernel.Output = workbench.TextOutput{Stdout: stdout, Stderr: stderr}
	if *asJSON {
		out = discard{}
	}
	if err := s.Execute(context.Background(), "env", out); err != nil {
		return err
	}
	if !*asJSON {
		return nil
	}
	rec := s.Last()
	if rec == nil {
		return fmt.Errorf("the workbench's env command returned no record")
	}
	data, err := json.MarshalIndent(rec.Raw, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", data)
	return nil
}
