// Package buildinfo says which TileLab build is running: the release version and the VCS commit Go stamped into
// the binary. Saved results and bench tables record both.
package buildinfo

import "runtime/debug"

// Version is TileLab's release version.
const Version = "0.1.0"

// Commit is the VCS revision stamped into the binary (12 hex digits, "+dirty" for a modified tree), or "unknown"
// when the build recorded none (go run, go test, or GOFLAGS=-buildvcs=false).
func Commit() string {
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
