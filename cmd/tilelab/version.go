package main

import (
	"fmt"
	"io"
	"runtime"

	"tilelab/internal/buildinfo"
)

// Version is TileLab's release version; the commit comes from the build's VCS stamp.
const Version = buildinfo.Version

func init() {
	register("version", "print the version, commit and Go version", func(args []string, stdout, _ io.Writer) error {
		fmt.Fprintf(stdout, "tilelab %s (commit %s, %s, %s/%s)\n", Version, commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	})
}

// commit is the VCS revision stamped into this binary.
func commit() string { return buildinfo.Commit() }
