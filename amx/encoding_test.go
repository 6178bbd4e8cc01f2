package amx

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestEncodingsMatchGNUAs assembles the AT&T form written above every macro of amx_encodings.h with GNU as and
// compares the bytes with the macro's.
func TestEncodingsMatchGNUAs(t *testing.T) {
	as, err := exec.LookPath("as")
	if err != nil {
		t.Skip("GNU as (binutils) is not installed: cannot check the AMX encodings")
	}
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("objcopy (binutils) is not installed: cannot check the AMX encodings")
	}
	src, err := os.ReadFile("amx_encodings.h")
	if err != nil {
		t.Fatal(err)
	}
	type macro struct {
		name, gnu string
		bytes     []byte
	}
	var macros []macro
	lines := strings.Split(string(src), "\n")
	def := regexp.MustCompile(`^#define (\w+) (.*)$`)
	for i, l := range lines {
		m := def.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if i == 0 || !strings.HasPrefix(lines[i-1], "// ") {
			t.Fatalf("macro %s has no AT&T comment above it", m[1])
		}
		mac := macro{name: m[1], gnu: strings.TrimPrefix(lines[i-1], "// ")}
		for _, part := range strings.Split(m[2], ";") {
			part = strings.TrimSpace(part)
			hex, ok := strings.CutPrefix(part, "BYTE $0x")
			if !ok {
				t.Fatalf("macro %s: %q is not a BYTE", mac.name, part)
			}
			v, err := strconv.ParseUint(hex, 16, 8)
			if err != nil {
				t.Fatalf("macro %s: %v", mac.name, err)
			}
			mac.bytes = append(mac.bytes, byte(v))
		}
		macros = append(macros, mac)
	}
	if len(macros) < 20 {
		t.Fatalf("found only %d macros in amx_encodings.h", len(macros))
	}
	dir := t.TempDir()
	for _, m := range macros {
		t.Run(m.name+" assembles to the same bytes as "+m.gnu, func(t *testing.T) {
			s := filepath.Join(dir, m.name+".s")
			o := filepath.Join(dir, m.name+".o")
			bin := filepath.Join(dir, m.name+".bin")
			if err := os.WriteFile(s, []byte(m.gnu+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(as, "--64", "-o", o, s).CombinedOutput(); err != nil {
				t.Fatalf("as: %v\n%s", err, out)
			}
			if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", o, bin).CombinedOutput(); err != nil {
				t.Fatalf("objcopy: %v\n%s", err, out)
			}
			want, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.bytes, want) {
				t.Fatalf("macro bytes % x, GNU as % x", m.bytes, want)
			}
		})
	}
}
