package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"tilelab/kernel"
	"tilelab/workbench"
)

func init() {
	register("kernel", "run the Jupyter kernel (what Jupyter starts: tilelab kernel -f CONNECTION_FILE)", runKernel)
}

func runKernel(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kernel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "Jupyter connection `file` (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tilelab kernel -f CONNECTION_FILE\n\nWhat Jupyter runs (the kernelspec's argv); it serves the workbench's language.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *file == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	ci, err := kernel.ReadConnectionFile(*file)
	if err != nil {
		return err
	}
	k, err := kernel.New(kernel.Config{
		Connection: ci,
		Info: kernel.Info{
			Implementation:        "tilelab",
			ImplementationVersion: Version,
			Language: kernel.LanguageInfo{
				Name:          "tilelab",
				Version:       Version,
				MIMEType:      "text/x-tilelab",
				FileExtension: ".tlab",
				PygmentsLexer: "text",
			},
			Banner: fmt.Sprintf("TileLab %s: where LLM inference work runs on AMX and GPUs. Type help.", Version),
		},
		Logger:     log.New(os.Stderr, "tilelab kernel: ", log.LstdFlags),
		TrapSIGINT: true,
	}, workbench.New(workbench.Options{Version: Version, Commit: commit()}))
	if err != nil {
		return err
	}
	return k.Serve(context.Background())
}
