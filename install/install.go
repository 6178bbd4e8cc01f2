// Package install writes and removes TileLab's Jupyter kernelspec: kernel.json (pointing at the absolute path
// of the tilelab binary, with interrupt_mode "message") and the logos Jupyter shows in its launcher.
//
// Where it goes follows Jupyter's own tools (jupyter_core.paths, `jupyter kernelspec install`):
//
//	--user          JUPYTER_DATA_DIR, else $XDG_DATA_HOME/jupyter, else ~/.local/share/jupyter (Linux),
//	                ~/Library/Jupyter (macOS); then kernels/NAME
//	--sys-prefix    the Python environment's prefix ($VIRTUAL_ENV, $CONDA_PREFIX, else sys.prefix of the Python
//	                that runs `jupyter`)/share/jupyter/kernels/NAME
//	--prefix P      P/share/jupyter/kernels/NAME
//	(none)          as --user
//
// Jupyter finds kernels in JUPYTER_PATH's folders first, then the user folder, then the environment and
// system folders; Install reports when the folder it wrote is not among them.
package install

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

// DefaultName is the kernelspec's default name: `jupyter console --kernel tilelab`.
const DefaultName = "tilelab"

// Scope says which kernel folder to use.
type Scope int

// The scopes of `tilelab install`'s flags.
const (
	User      Scope = iota // --user (the default)
	SysPrefix              // --sys-prefix
	Prefix                 // --prefix P
)

// Options choose the kernelspec's location, name and contents.
type Options struct {
	Scope       Scope
	Prefix      string // for Scope Prefix
	Name        string // kernelspec name; DefaultName when empty
	Binary      string // the tilelab binary; the running executable when empty
	DisplayName string // shown in Jupyter's launcher; "TileLab" when empty
}

//go:embed logo.svg
var logoSVG []byte

var validName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func (o Options) name() (string, error) {
	if o.Name == "" {
		return DefaultName, nil
	}
	// "." and ".." pass the character rule but name the kernels folder or the data folder itself.
	if !validName.MatchString(o.Name) || o.Name == "." || o.Name == ".." {
		return "", fmt.Errorf("kernel name %q: use only letters, digits, '.', '_' and '-' (and not just '.' or '..')", o.Name)
	}
	return o.Name, nil
}

// DataDir returns the Jupyter data folder (the one holding kernels/) that the options select.
func DataDir(o Options) (string, error) {
	switch o.Scope {
	case User:
		return userDataDir()
	case SysPrefix:
		p, err := sysPrefix()
		if err != nil {
			return "", err
		}
		return filepath.Join(p, "share", "jupyter"), nil
	case Prefix:
		if o.Prefix == "" {
			return "", errors.New("--prefix needs a folder")
		}
		p, err := filepath.Abs(o.Prefix)
		if err != nil {
			return "", err
		}
		return filepath.Join(p, "share", "jupyter"), nil
	}
	return "", fmt.Errorf("unknown install scope %d", o.Scope)
}

// KernelDir returns the kernelspec folder the options select.
func KernelDir(o Options) (string, error) {
	name, err := o.name()
	if err != nil {
		return "", err
	}
	d, err := DataDir(o)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kernels", name), nil
}

func userDataDir() (string, error) {
	if d := os.Getenv("JUPYTER_DATA_DIR"); d != "" {
		return filepath.Abs(d)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home folder for a user install (set JUPYTER_DATA_DIR or use --prefix): %w", err)
	}
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Jupyter"), nil
	case "windows":
		if a := os.Getenv("APPDATA"); a != "" {
			return filepath.Join(a, "jupyter"), nil
		}
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "jupyter"), nil
	}
	return filepath.Join(home, ".local", "share", "jupyter"), nil
}

// sysPrefix finds the Python environment Jupyter runs in.
func sysPrefix() (string, error) {
	for _, v := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := os.Getenv(v); p != "" {
			return p, nil
		}
	}
	for _, py := range []string{jupyterPython(), "python3", "/usr/bin/python3"} {
		if py == "" {
			continue
		}
		out, err := exec.Command(py, "-c", "import sys; print(sys.prefix)").Output()
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			return string(bytes.TrimSpace(out)), nil
		}
	}
	return "", errors.New("--sys-prefix: no Python environment found (no VIRTUAL_ENV, CONDA_PREFIX or python3)")
}

// jupyterPython is the interpreter the `jupyter` command runs under (its #! line), or "". The python3 first on
// PATH may be another installation (a pyenv build, say) whose prefix Jupyter never searches.
func jupyterPython() string {
	p, err := exec.LookPath("jupyter")
	if err != nil {
		return ""
	}
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	first := make([]byte, 512)
	n, _ := f.Read(first)
	line, _, _ := strings.Cut(string(first[:n]), "\n")
	interp, ok := strings.CutPrefix(line, "#!")
	fields := strings.Fields(interp)
	if !ok || len(fields) == 0 {
		return ""
	}
	if filepath.Base(fields[0]) == "env" && len(fields) > 1 { // #!/usr/bin/env python3
		return fields[len(fields)-1]
	}
	return fields[0]
}

// SearchPath lists the folders Jupyter searches for kernels/, in order (jupyter_core.paths.jupyter_path).
func SearchPath() []string {
	var dirs []string
	if jp := os.Getenv("JUPYTER_PATH"); jp != "" {
		for _, d := range filepath.SplitList(jp) {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	if d, err := userDataDir(); err == nil {
		dirs = append(dirs, d)
	}
	if p, err := sysPrefix(); err == nil {
		dirs = append(dirs, filepath.Join(p, "share", "jupyter"))
	}
	dirs = append(dirs, "/usr/local/share/jupyter", "/usr/share/jupyter")
	for i, d := range dirs {
		if a, err := filepath.Abs(d); err == nil {
			dirs[i] = filepath.Clean(a)
		}
	}
	return slices.Compact(dirs)
}

// KernelJSON returns the kernelspec for a binary.
func KernelJSON(binary, displayName string) ([]byte, error) {
	if displayName == "" {
		displayName = "TileLab"
	}
	spec := map[string]any{
		"argv":           []string{binary, "kernel", "-f", "{connection_file}"},
		"display_name":   displayName,
		"language":       "tilelab",
		"interrupt_mode": "message",
		"metadata":       map[string]any{"debugger": false},
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	return append(b, '\n'), err
}

// Result says what Install or Uninstall did.
type Result struct {
	Dir     string // the kernelspec folder
	OnPath  bool   // whether Jupyter will find it without a JUPYTER_PATH change
	Binary  string // the binary kernel.json runs
	Removed bool   // for Uninstall: whether there was something to remove
}

// Install writes kernel.json and the logos; an existing TileLab kernelspec of the same name is replaced, another
// language's is refused.
func Install(o Options) (Result, error) {
	dir, err := KernelDir(o)
	if err != nil {
		return Result{}, err
	}
	if err := checkOurs(dir); err != nil {
		return Result{}, err
	}
	bin := o.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return Result{}, fmt.Errorf("cannot find the tilelab binary: %w", err)
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return Result{}, err
	}
	if r, err := filepath.EvalSymlinks(bin); err == nil {
		bin = r
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return Result{}, fmt.Errorf("kernel binary %s does not exist", bin)
	}
	spec, err := KernelJSON(bin, o.DisplayName)
	if err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	files := map[string][]byte{"kernel.json": spec, "logo-svg.svg": logoSVG}
	for _, size := range []int{32, 64} {
		png, err := LogoPNG(size)
		if err != nil {
			return Result{}, err
		}
		files[fmt.Sprintf("logo-%dx%d.png", size, size)] = png
	}
	for name, b := range files {
		if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
			return Result{}, err
		}
	}
	return Result{Dir: dir, OnPath: onPath(dir), Binary: bin}, nil
}

// Uninstall removes the kernelspec folder the options select, refusing a folder that is not a kernelspec or is
// another language's.
func Uninstall(o Options) (Result, error) {
	dir, err := KernelDir(o)
	if err != nil {
		return Result{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, "kernel.json")); errors.Is(err, os.ErrNotExist) {
		return Result{Dir: dir}, nil
	}
	if err := checkOurs(dir); err != nil {
		return Result{}, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return Result{}, err
	}
	return Result{Dir: dir, Removed: true}, nil
}

// checkOurs refuses a kernelspec folder whose kernel.json belongs to another language: --name python3 must not
// overwrite or delete the Python kernel. A folder without kernel.json is free to use.
func checkOurs(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var spec struct {
		Language string `json:"language"`
	}
	if err := json.Unmarshal(data, &spec); err != nil || spec.Language != "tilelab" {
		return fmt.Errorf("%s holds another kernel (language %q), not TileLab's; choose another --name (or remove it with jupyter kernelspec remove)", dir, spec.Language)
	}
	return nil
}

func onPath(kernelDir string) bool {
	data := filepath.Clean(filepath.Dir(filepath.Dir(kernelDir)))
	return slices.Contains(SearchPath(), data)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LogoPNG draws the logo at size×size pixels: a 4×4 grid of tiles, the upper-right triangle lit, on a dark
// rounded square — the picture of a tile multiply that logo-svg.svg also draws.
func LogoPNG(size int) ([]byte, error) {
	if size < 8 || size > 1024 {
		return nil, fmt.Errorf("logo size %d is out of range 8..1024", size)
	}
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	bg := color.NRGBA{0x1f, 0x29, 0x37, 0xff}
	lit := color.NRGBA{0xf5, 0x9e, 0x0b, 0xff}
	dim := color.NRGBA{0x38, 0xbd, 0xf8, 0xff}
	r := float64(size) * 0.18 // corner radius
	for y := range size {
		for x := range size {
			if insideRounded(float64(x)+0.5, float64(y)+0.5, float64(size), r) {
				img.SetNRGBA(x, y, bg)
			}
		}
	}
	margin := float64(size) * 0.14
	cell := (float64(size) - 2*margin) / 4
	gap := max(1, cell*0.14)
	for i := range 4 {
		for j := range 4 {
			c := dim
			if j <= i {
				c = lit
			}
			x0, y0 := margin+float64(i)*cell+gap/2, margin+float64(j)*cell+gap/2
			for y := int(y0); y < int(y0+cell-gap); y++ {
				for x := int(x0); x < int(x0+cell-gap); x++ {
					img.SetNRGBA(x, y, c)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func insideRounded(x, y, size, r float64) bool {
	cx := min(max(x, r), size-r)
	cy := min(max(y, r), size-r)
	dx, dy := x-cx, y-cy
	return dx*dx+dy*dy <= r*r
}

// Describe is a one-line summary for the command line.
func (r Result) Describe(uninstall bool) string {
	if uninstall {
		if !r.Removed {
			return "no kernelspec at " + r.Dir
		}
		return "removed " + r.Dir
	}
	s := "installed kernelspec in " + r.Dir + " (runs " + r.Binary + ")"
	if !r.OnPath {
		s += "\nJupyter does not search " + filepath.Dir(filepath.Dir(r.Dir)) + "; add it to JUPYTER_PATH: export JUPYTER_PATH=" +
			strings.Join(append([]string{filepath.Dir(filepath.Dir(r.Dir))}, filepath.SplitList(os.Getenv("JUPYTER_PATH"))...), string(os.PathListSeparator))
	}
	return s
}
