package gguf

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"tilelab/engine/tensor"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic; whatever it accepts must survive being written
// back out with NewFile and Writer and parsed again unchanged.
func FuzzParse(f *testing.F) {
	small := func(kv []KV, tensors []TensorInfo) []byte {
		m, err := NewFile(kv, tensors)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, m)
		if err != nil {
			f.Fatal(err)
		}
		for i := range m.Tensors {
			b := make([]byte, m.Tensors[i].Size)
			for j := range b {
				b[j] = byte(j*7 + i)
			}
			w.Write(b)
		}
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	f.Add(small(nil, nil))
	f.Add(small(everyKind(f), nil))
	f.Add(small([]KV{{"general.alignment", Uint32(64)}, {"general.architecture", Str("llama")}},
		[]TensorInfo{NewTensorInfo("a", tensor.F32, 4, 2), NewTensorInfo("b", tensor.Q4_0, 32, 2, 2), NewTensorInfo("c", tensor.Q6_K, 256)}))
	f.Add(head(2, 0).tinfo("a", 0, 0, 16).tinfo("b", 0, 32, 16).pad(32).zeros(96).b) // overlapping
	f.Add([]byte("GGUF\x02\x00\x00\x00"))
	// The real files, whole for ordinary runs; while fuzzing, only their first 64 KiB, since every execution
	// copies its input and multi-megabyte inputs would make the fuzzer crawl.
	fuzzing := false
	if fl := flag.Lookup("test.fuzz"); fl != nil && fl.Value.String() != "" {
		fuzzing = true
	}
	for _, path := range realFiles() {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if fuzzing && len(data) > 64<<10 {
			data = data[:64<<10]
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data)
		if err != nil {
			if _, ok := err.(*FormatError); !ok {
				t.Fatalf("error %v is a %T, not a *FormatError", err, err)
			}
			return
		}
		for i := range g.Tensors {
			if d := g.TensorData(&g.Tensors[i]); int64(len(d)) != g.Tensors[i].Size {
				t.Fatalf("tensor %q: view of %d bytes, size %d", g.Tensors[i].Name, len(d), g.Tensors[i].Size)
			}
		}
		m, err := NewFile(g.KV, g.Tensors)
		if err != nil {
			t.Fatalf("Parse accepted what NewFile refuses: %v", err)
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range g.Tensors {
			if _, err := w.Write(g.TensorData(&g.Tensors[i])); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		h, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
		if len(h.KV) != len(g.KV) || len(h.Tensors) != len(g.Tensors) {
			t.Fatalf("rewrite changed counts")
		}
		for i := range g.KV {
			if h.KV[i].Key != g.KV[i].Key || !h.KV[i].Value.Equal(g.KV[i].Value) {
				t.Fatalf("rewrite changed key %q", g.KV[i].Key)
			}
		}
		for i := range g.Tensors {
			a, b := &g.Tensors[i], &h.Tensors[i]
			if a.Name != b.Name || a.Type != b.Type || a.Ne != b.Ne || !bytes.Equal(g.TensorData(a), h.TensorData(b)) {
				t.Fatalf("rewrite changed tensor %q", a.Name)
			}
		}
	})
}
