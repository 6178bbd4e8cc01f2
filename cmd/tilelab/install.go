package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"tilelab/install"
)

func init() {
	register("install", "install the Jupyter kernelspec ([--user|--sys-prefix|--prefix P] [--name N] [--uninstall])", runInstall)
}

func runInstall(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.Bool("user", false, "install for this user (the default): JUPYTER_DATA_DIR or ~/.local/share/jupyter")
	sysPrefix := fs.Bool("sys-prefix", false, "install into the Python environment's prefix (VIRTUAL_ENV, CONDA_PREFIX or sys.prefix)")
	prefix := fs.String("prefix", "", "install into `P`/share/jupyter/kernels")
	name := fs.String("name", install.DefaultName, "kernelspec `name`")
	display := fs.String("display-name", "TileLab", "name shown in Jupyter's launcher")
	uninstall := fs.Bool("uninstall", false, "remove the kernelspec instead")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tilelab install [--user|--sys-prefix|--prefix P] [--name N] [--display-name TEXT] [--uninstall]\n\nWrites the kernelspec Jupyter needs to start this binary as a kernel (kernel.json and logos).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tilelab install: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	prefixGiven := false
	fs.Visit(func(f *flag.Flag) { prefixGiven = prefixGiven || f.Name == "prefix" })
	if prefixGiven && *prefix == "" {
		// An empty --prefix (an unset shell variable, say) must not quietly become a user install.
		fmt.Fprintln(stderr, "tilelab install: --prefix needs a folder")
		return errUsage
	}
	n := 0
	for _, b := range []bool{*user, *sysPrefix, *prefix != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return errors.New("choose one of --user, --sys-prefix and --prefix")
	}
	o := install.Options{Scope: install.User, Name: *name, DisplayName: *display}
	switch {
	case *sysPrefix:
		o.Scope = install.SysPrefix
	case *prefix != "":
		o.Scope, o.Prefix = install.Prefix, *prefix
	}
	var r install.Result
	var err error
	if *uninstall {
		r, err = install.Uninstall(o)
	} else {
		r, err = install.Install(o)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, r.Describe(*uninstall))
	return nil
}
