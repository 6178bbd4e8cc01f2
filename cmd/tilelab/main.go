// Command tilelab is TileLab's one binary: the Jupyter kernel, its installer, the demo, headless experiment runs,
// and plain subcommands for the engine (synth, plan, generate, logits, bench, env, version).
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"tilelab/workbench/lang"
)

// subcommand is one `tilelab NAME ...` entry. Each lives in its own file and registers itself in init.
type subcommand struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var subcommands = map[string]subcommand{}

func register(name, summary string, run func(args []string, stdout, stderr io.Writer) error) {
	subcommands[name] = subcommand{name, summary, run}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tilelab COMMAND [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, subcommands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tilelab COMMAND -h' for a command's flags.")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tilelab: unknown command %q%s\n", args[0], suggest(args[0]))
		usage(stderr)
		return 2
	}
	if err := cmd.run(args[1:], stdout, stderr); err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "tilelab %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

// errUsage is returned by a subcommand whose flags were wrong; the flag package has already said why.
var errUsage = fmt.Errorf("usage")

// suggest names the subcommand a mistyped word most likely meant, as the workbench suggests commands.
func suggest(word string) string {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	if best := lang.Nearest(word, names); best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}
