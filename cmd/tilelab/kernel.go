package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"tilelab/kernel"
	"tilelab/kernel/echo"
)

// newInterpreter builds the language the kernel runs. It is a variable so the workbench can take over from
// the echo interpreter (a test stand-in) by assigning workbench.New in its own file.
var newInterpreter func() kernel.Interpreter = echo.New

func init() {
	register("kernel", "run the Jupyter kernel (what Jupyter starts: tilelab kernel -f CONNECTION_FILE)", runKernel)
}

func runKernel(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kernel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "Jupyter connection file (required)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: tilelab kernel -f CONNECTION_FILE")
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
	}, newInterpreter())
	if err != nil {
		return err
	}
	return k.Serve(context.Background())
}
