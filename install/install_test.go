package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tilelab")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestKernelDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("JUPYTER_DATA_DIR", "")
	t.Setenv("VIRTUAL_ENV", "/venv")
	tests := []struct {
		name string
		env  map[string]string
		o    Options
		want string
	}{
		{"a user install goes under ~/.local/share/jupyter", nil, Options{}, filepath.Join(home, ".local/share/jupyter/kernels/tilelab")},
		{"a user install honours JUPYTER_DATA_DIR", map[string]string{"JUPYTER_DATA_DIR": "/data/j"}, Options{}, "/data/j/kernels/tilelab"},
		{"a user install honours XDG_DATA_HOME", map[string]string{"XDG_DATA_HOME": "/xdg"}, Options{}, "/xdg/jupyter/kernels/tilelab"},
		{"a prefix install goes under P/share/jupyter", nil, Options{Scope: Prefix, Prefix: "/opt/p"}, "/opt/p/share/jupyter/kernels/tilelab"},
		{"a sys-prefix install uses the virtual environment", nil, Options{Scope: SysPrefix}, "/venv/share/jupyter/kernels/tilelab"},
		{"a name picks the folder", nil, Options{Scope: Prefix, Prefix: "/p", Name: "tl-dev"}, "/p/share/jupyter/kernels/tl-dev"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := KernelDir(tc.o)
			if err != nil || got != tc.want {
				t.Fatalf("KernelDir = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	for _, bad := range []Options{{Name: "a/b"}, {Name: "has space"}, {Name: "."}, {Name: ".."}, {Scope: Prefix}} {
		if _, err := KernelDir(bad); err == nil {
			t.Errorf("KernelDir(%+v) accepted bad options", bad)
		}
	}
}

func TestInstallAndUninstall(t *testing.T) {
	prefix := t.TempDir()
	bin := fakeBinary(t)
	t.Setenv("JUPYTER_PATH", "")
	o := Options{Scope: Prefix, Prefix: prefix, Binary: bin}
	r, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("kernel.json runs the binary by absolute path with message interrupts", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(r.Dir, "kernel.json"))
		if err != nil {
			t.Fatal(err)
		}
		var spec struct {
			Argv          []string `json:"argv"`
			DisplayName   string   `json:"display_name"`
			Language      string   `json:"language"`
			InterruptMode string   `json:"interrupt_mode"`
		}
		if err := json.Unmarshal(b, &spec); err != nil {
			t.Fatal(err)
		}
		want := []string{bin, "kernel", "-f", "{connection_file}"}
		if strings.Join(spec.Argv, " ") != strings.Join(want, " ") || spec.InterruptMode != "message" || spec.Language != "tilelab" || spec.DisplayName != "TileLab" {
			t.Errorf("kernel.json %s", b)
		}
	})
	t.Run("the logos are valid images of the right sizes", func(t *testing.T) {
		for _, size := range []int{32, 64} {
			f, err := os.ReadFile(filepath.Join(r.Dir, fmt.Sprintf("logo-%dx%d.png", size, size)))
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(f))
			if err != nil || img.Bounds().Dx() != size || img.Bounds().Dy() != size {
				t.Errorf("logo %d: %v %v", size, img.Bounds(), err)
			}
		}
		svg, err := os.ReadFile(filepath.Join(r.Dir, "logo-svg.svg"))
		if err != nil || !bytes.Contains(svg, []byte("<svg")) {
			t.Errorf("logo-svg.svg: %v", err)
		}
	})
	t.Run("a prefix outside Jupyter's path is reported, and found once on JUPYTER_PATH", func(t *testing.T) {
		if r.OnPath || !strings.Contains(r.Describe(false), "JUPYTER_PATH") {
			t.Errorf("OnPath %v, %q", r.OnPath, r.Describe(false))
		}
		t.Setenv("JUPYTER_PATH", filepath.Join(prefix, "share", "jupyter"))
		r2, err := Install(o)
		if err != nil || !r2.OnPath {
			t.Errorf("reinstall: OnPath %v, %v", r2.OnPath, err)
		}
	})
	t.Run("uninstall removes the folder, and a second uninstall finds nothing", func(t *testing.T) {
		u, err := Uninstall(o)
		if err != nil || !u.Removed {
			t.Fatalf("%+v %v", u, err)
		}
		if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists", r.Dir)
		}
		u, err = Uninstall(o)
		if err != nil || u.Removed {
			t.Errorf("second uninstall: %+v %v", u, err)
		}
	})
	t.Run("a missing binary is refused", func(t *testing.T) {
		_, err := Install(Options{Scope: Prefix, Prefix: prefix, Binary: filepath.Join(prefix, "nope")})
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("error %v", err)
		}
	})
}

func TestLogoPNGSizes(t *testing.T) {
	for _, bad := range []int{0, 7, 4096} {
		if _, err := LogoPNG(bad); err == nil {
			t.Errorf("LogoPNG(%d) accepted", bad)
		}
	}
}

func TestSysPrefixFollowsThePythonThatRunsJupyter(t *testing.T) {
	bin := t.TempDir()
	// A python3 first on PATH that is not Jupyter's (as a pyenv shim is), and a jupyter whose #! names another.
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("python3", "#!/bin/sh\necho /not/jupyters/prefix\n")
	write("jupyters-python", "#!/bin/sh\necho /jupyters/prefix\n")
	write("jupyter", "#!"+filepath.Join(bin, "jupyters-python")+"\n")
	t.Setenv("PATH", bin)
	t.Setenv("VIRTUAL_ENV", "")
	t.Setenv("CONDA_PREFIX", "")
	got, err := DataDir(Options{Scope: SysPrefix})
	if want := "/jupyters/prefix/share/jupyter"; err != nil || got != want {
		t.Errorf("DataDir(--sys-prefix) = %q, %v; want %q", got, err, want)
	}
}

func TestAnotherLanguagesKernelspecIsLeftAlone(t *testing.T) {
	prefix := t.TempDir()
	o := Options{Scope: Prefix, Prefix: prefix, Name: "python3", Binary: fakeBinary(t)}
	dir, err := KernelDir(o)
	if err != nil {
		t.Fatal(err)
	}
	theirs := []byte(`{"argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}`)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kernel.json"), theirs, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("install under its name is refused", func(t *testing.T) {
		if _, err := Install(o); err == nil || !strings.Contains(err.Error(), `another kernel (language "python")`) {
			t.Errorf("Install: %v", err)
		}
	})
	t.Run("uninstall under its name is refused", func(t *testing.T) {
		if r, err := Uninstall(o); err == nil || r.Removed {
			t.Errorf("Uninstall: %+v, %v", r, err)
		}
	})
	if got, err := os.ReadFile(filepath.Join(dir, "kernel.json")); err != nil || !bytes.Equal(got, theirs) {
		t.Errorf("the other kernel's kernel.json changed: %s, %v", got, err)
	}
}
