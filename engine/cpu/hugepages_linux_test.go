package cpu

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// anonHugeKB is the process's memory in anonymous huge pages, from /proc/self/smaps_rollup.
func anonHugeKB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		t.Skipf("no /proc/self/smaps_rollup to read huge pages from: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "AnonHugePages:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("AnonHugePages %q: %v", v, err)
			}
			return n
		}
	}
	t.Skip("smaps_rollup reports no AnonHugePages")
	return 0
}

func TestImportCopiesLargeWeightsIntoHugePages(t *testing.T) {
	defer func(v bool) { hugePages = v }(hugePages)
	rng := rand.New(rand.NewPCG(9, 9))
	mk := func(rows int) *graph.Tensor {
		w := &graph.Tensor{Name: "w", Type: tensor.Q4_0, Ne: [4]int{4096, rows, 1, 1}}
		w.Data = make([]byte, w.Bytes())
		for i := range w.Data {
			w.Data[i] = byte(rng.Uint32())
		}
		return w
	}
	t.Run("a large weight is copied, byte for byte, into huge pages", func(t *testing.T) {
		if !thpAvailable {
			t.Skip("transparent huge pages are off on this machine ([never])")
		}
		hugePages = true
		w := mk(8192) // 18 MiB
		orig := w.Data
		before := anonHugeKB(t)
		if err := BufferType().Import(w); err != nil {
			t.Fatal(err)
		}
		if &w.Data[0] == &orig[0] || !bytes.Equal(w.Data, orig) {
			t.Fatal("the weight was not copied, or the copy differs")
		}
		if got := anonHugeKB(t) - before; got < 8<<10 {
			t.Errorf("huge pages grew by %d kB for an 18 MiB weight; want most of it", got)
		}
	})
	t.Run("small weights, and all weights without TILELAB_HUGEPAGES=1, keep the bytes where they are", func(t *testing.T) {
		for _, c := range []struct {
			on   bool
			rows int
		}{{true, 64}, {false, 8192}} {
			hugePages = c.on
			w := mk(c.rows)
			orig := w.Data
			if err := BufferType().Import(w); err != nil {
				t.Fatal(err)
			}
			if &w.Data[0] != &orig[0] {
				t.Errorf("hugePages=%v, %d rows: the weight was copied", c.on, c.rows)
			}
		}
	})
}
