package gguf

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"tilelab/engine/tensor"
)

func TestOpenParsesTheRealModel(t *testing.T) {
	path := filepath.Join(mustTestdata(t), "models", "tiny-qwen3moe-q4_0.gguf")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := os.Stat(path)
	checks := []struct {
		name string
		ok   bool
	}{
		{"the version is 3", f.Version == 3},
		{"the alignment defaults to 32", f.Alignment == 32},
		{"the architecture is qwen3moe", f.Architecture() == "qwen3moe"},
		{"there are 51 tensors and 28 keys", len(f.Tensors) == 51 && len(f.KV) == 28},
		{"the size is the file's", f.Size() == st.Size()},
		{"the data section is aligned", f.DataOffset%32 == 0},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("failed: version %d alignment %d arch %q tensors %d kv %d size %d dataoff %d",
					f.Version, f.Alignment, f.Architecture(), len(f.Tensors), len(f.KV), f.Size(), f.DataOffset)
			}
		})
	}
	t.Run("typed accessors read each kind of key", func(t *testing.T) {
		if n, ok := f.Uint("qwen3moe.block_count"); !ok || n != 4 {
			t.Errorf("block_count = %d, %v", n, ok)
		}
		if n, ok := f.Int("qwen3moe.expert_used_count"); !ok || n != 2 {
			t.Errorf("expert_used_count = %d, %v", n, ok)
		}
		if x, ok := f.Float("qwen3moe.rope.freq_base"); !ok || x != 1e6 {
			t.Errorf("freq_base = %g, %v", x, ok)
		}
		if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || b {
			t.Errorf("add_bos_token = %v, %v", b, ok)
		}
		if s, ok := f.String("tokenizer.ggml.pre"); !ok || s != "qwen2" {
			t.Errorf("pre = %q, %v", s, ok)
		}
		toks, ok := f.Strings("tokenizer.ggml.tokens")
		if !ok || len(toks) != 151936 || toks[0] != "!" {
			t.Errorf("tokens: %d, %v", len(toks), ok)
		}
		types, ok := f.Int32s("tokenizer.ggml.token_type")
		if !ok || len(types) != 151936 {
			t.Errorf("token_type: %d, %v", len(types), ok)
		}
		if _, ok := f.String("qwen3moe.block_count"); ok {
			t.Error("a uint32 was returned as a string")
		}
		if _, ok := f.Uint("no.such.key"); ok {
			t.Error("a missing key was found")
		}
	})
	t.Run("tensor infos have ggml shapes and views of their size", func(t *testing.T) {
		ti, ok := f.Tensor("blk.0.ffn_gate_exps.weight")
		if !ok {
			t.Fatal("missing blk.0.ffn_gate_exps.weight")
		}
		if ti.Type != tensor.Q4_0 || ti.Ne != [4]int{256, 128, 8, 1} || ti.NDims != 3 {
			t.Errorf("got %v %v ndims %d", ti.Type, ti.Ne, ti.NDims)
		}
		var end int64
		for i := range f.Tensors {
			ti := &f.Tensors[i]
			if d := f.TensorData(ti); int64(len(d)) != ti.Size || int64(cap(d)) != ti.Size {
				t.Fatalf("%s: view len %d cap %d, size %d", ti.Name, len(d), cap(d), ti.Size)
			}
			end = max(end, f.DataOffset+ti.Offset+ti.Size)
		}
		if end != f.Size() {
			t.Errorf("last tensor ends at %d, file is %d bytes", end, f.Size())
		}
	})
	t.Run("token embedding rows dequantize to small finite weights", func(t *testing.T) {
		ti, _ := f.Tensor("token_embd.weight")
		row := f.TensorData(ti)[:tensor.Q4_0.RowBytes(256)]
		y, err := tensor.DequantizeRow(tensor.Q4_0, row, 256)
		if err != nil {
			t.Fatal(err)
		}
		var ss float64
		for _, v := range y {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 1 {
				t.Fatalf("weight %g", v)
			}
			ss += float64(v) * float64(v)
		}
		if std := math.Sqrt(ss / 256); std < 0.005 || std > 0.05 {
			t.Errorf("row std %g, the file's weights have std 0.02", std)
		}
	})
}

func TestEveryRealFileParses(t *testing.T) {
	mustTestdata(t)
	for _, path := range realFiles() {
		t.Run(filepath.Base(path)+" opens and its tensors fit", func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Architecture() == "" {
				t.Error("no general.architecture")
			}
			if toks, ok := f.Strings("tokenizer.ggml.tokens"); !ok || len(toks) == 0 {
				t.Error("no tokenizer.ggml.tokens")
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.KV, g.KV) || !reflect.DeepEqual(f.Tensors, g.Tensors) {
				t.Error("Open and Parse disagree")
			}
		})
	}
	t.Run("the llama SentencePiece vocabulary has byte tokens, scores and types", func(t *testing.T) {
		f, err := Open(filepath.Join(testdataDir(), "tokenizer", "ggml-vocab-llama-spm.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		toks, _ := f.Strings("tokenizer.ggml.tokens")
		scores, ok1 := f.Float32s("tokenizer.ggml.scores")
		types, ok2 := f.Int32s("tokenizer.ggml.token_type")
		if !ok1 || !ok2 || len(toks) != 32000 || len(scores) != 32000 || len(types) != 32000 {
			t.Fatalf("tokens %d scores %d types %d", len(toks), len(scores), len(types))
		}
		if toks[3] != "<0x00>" || types[3] != 6 || types[1] != 3 || types[0] != 2 {
			t.Errorf("token 3 %q type %d; types of 0,1: %d %d", toks[3], types[3], types[0], types[1])
		}
		if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || !b {
			t.Error("add_bos_token should be true")
		}
	})
}

// TestRewritingTheRealModelReproducesItByteForByte checks the writer against llama.cpp's own output: the same
// metadata and tensors, streamed through NewFile and Writer, give the identical file.
func TestRewritingTheRealModelReproducesItByteForByte(t *testing.T) {
	path := filepath.Join(mustTestdata(t), "models", "tiny-qwen3moe-q4_0.gguf")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(orig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewFile(f.KV, f.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	if m.DataOffset != f.DataOffset || m.Size() != f.Size() || !reflect.DeepEqual(m.Tensors, f.Tensors) {
		t.Fatalf("metadata-only file differs: data offset %d vs %d, size %d vs %d", m.DataOffset, f.DataOffset, m.Size(), f.Size())
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Tensors {
		if _, err := w.Write(f.TensorData(&f.Tensors[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		i := 0
		for i < min(buf.Len(), len(orig)) && buf.Bytes()[i] == orig[i] {
			i++
		}
		t.Fatalf("rewritten file differs from the original at byte %#x (lengths %d, %d)", i, buf.Len(), len(orig))
	}
}

func TestOpenReportsMissingAndEmptyFiles(t *testing.T) {
	dir := t.TempDir()
	t.Run("a missing file gives the os error", func(t *testing.T) {
		if _, err := Open(filepath.Join(dir, "nope.gguf")); !os.IsNotExist(err) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("an empty file is a truncated file, named in the error", func(t *testing.T) {
		p := filepath.Join(dir, "empty.gguf")
		os.WriteFile(p, nil, 0o644)
		_, err := Open(p)
		fe, ok := err.(*FormatError)
		if !ok || fe.Offset != 0 || fe.Path != p {
			t.Fatalf("err = %#v", err)
		}
		if want := "gguf: " + p + ": offset 0x0: truncated: magic needs 4 bytes, 0 left"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
}
