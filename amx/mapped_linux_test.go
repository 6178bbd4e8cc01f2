package amx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// mapFile writes b to a file and maps it read-only, as gguf.Open maps a model.
func mapFile(t *testing.T, b []byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "weight.bin")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(b), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	return m
}

func TestAWeightFromAMappedFileKeepsItsPlainBytes(t *testing.T) {
	r := rng(9)
	plain := RandomWeight(tensor.Q4_0, 256, 64, 1, r)
	mapped := mapFile(t, plain.Data)
	t.Run("the mapping is recognised as a file and heap memory is not", func(t *testing.T) {
		if !fileMapped(mapped) || !fileMapped(mapped[100:200]) {
			t.Fatal("a file mapping was not recognised")
		}
		if fileMapped(plain.Data) || fileMapped(nil) {
			t.Fatal("heap memory was taken for a file mapping")
		}
	})
	t.Run("the default buffer type keeps a view of the mapping and decodes as CPU mode does", func(t *testing.T) {
		w := &graph.Tensor{Name: plain.Name, Type: plain.Type, Ne: plain.Ne, Layout: tensor.Plain, Data: mapped}
		if err := NewBufferType().Import(w); err != nil {
			t.Fatal(err)
		}
		pw := w.Extra.(*weights)
		if pw.plain == nil || &pw.plain.Data[0] != &mapped[0] {
			t.Fatal("the plain bytes of a mapped file were not kept as a view of it")
		}
		op := RandomMulMat(w, 1, r)
		want, _ := cpuMode(t, plain, op)
		name := runOp(t, newTestBackend(t, Options{Emulate: true}), DefaultThreshold, op)
		if !strings.Contains(name, "plain q4_0") {
			t.Fatalf("kernel %q", name)
		}
		sameBits(t, name, op.Dst.F32, want)
	})
}

func TestAMappingSplitByAdviceStillCountsAsTheFile(t *testing.T) {
	page := os.Getpagesize()
	m := mapFile(t, make([]byte, 4*page))
	// Different advice on the middle pages splits the mapping into three lines of /proc/self/maps.
	if err := unix.Madvise(m[page:2*page], unix.MADV_RANDOM); err != nil {
		t.Skipf("madvise: %v", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(maps), "/weight.bin"); n < 2 {
		t.Fatalf("the mapping shows as %d lines after madvise; the test needs it split", n)
	}
	if !fileMapped(m) || !fileMapped(m[page/2:3*page]) {
		t.Fatal("a file mapping split by madvise was not recognised across its parts")
	}
}
