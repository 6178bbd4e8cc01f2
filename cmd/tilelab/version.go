package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Version is TileLab's release version; the commit comes from the build's VCS stamp.
const Version = "0.1.0"

func init() {
	register("version", "print the version, commit and Go version", func(args []string, stdout, _ io.Writer) error {
		fmt.Fprintf(stdout, "tilelab %s (commit %s, %s, %s/%s)\n", Version, commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	})
}

// commit reads the VCS revision Go stamped into the binary, or "unknown" (for example under go test).
func commit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}
