package gguf

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"tilelab/engine/tensor"
)

// everyKind returns KVs covering every value type, arrays of each, and nested arrays.
func everyKind(t testing.TB) []KV {
	nested, err := Array(TypeArray, Uint32s([]uint32{1, 2, 3}), Strings([]string{"x", ""}), Float32s(nil))
	if err != nil {
		t.Fatal(err)
	}
	deeper, err := Array(TypeArray, nested)
	if err != nil {
		t.Fatal(err)
	}
	i16s, _ := Array(TypeInt16, Int16(-3), Int16(7))
	f64s, _ := Array(TypeFloat64, Float64(math.Pi), Float64(-0.5))
	u64s, _ := Array(TypeUint64, Uint64(math.MaxUint64))
	return []KV{
		{"general.architecture", Str("test")},
		{"u8", Uint8(200)}, {"i8", Int8(-100)}, {"u16", Uint16(60000)}, {"i16", Int16(-30000)},
		{"u32", Uint32(4e9)}, {"i32", Int32(-2e9)}, {"u64", Uint64(math.MaxUint64)}, {"i64", Int64(math.MinInt64)},
		{"f32", Float32(1.5)}, {"f64", Float64(-2.25)}, {"yes", Bool(true)}, {"no", Bool(false)},
		{"s", Str("héllo\x00world")}, {"empty", Str("")},
		{"strs", Strings([]string{"a", "", "ccc"})}, {"f32s", Float32s([]float32{1, -2, 3.5})},
		{"i32s", Int32s([]int32{-1, 0, 1 << 30})}, {"u32s", Uint32s([]uint32{7})}, {"u8s", Uint8s([]uint8{1, 2})},
		{"i64s", Int64s([]int64{-5, 5})}, {"bools", Bools([]bool{true, false})}, {"i16s", i16s}, {"f64s", f64s},
		{"u64s", u64s}, {"nested", nested}, {"deeper", deeper}, {"none", Strings(nil)},
	}
}

func TestWriterRoundTripsEveryValueTypeAndTensorType(t *testing.T) {
	kv := everyKind(t)
	tensors := []TensorInfo{
		NewTensorInfo("f32", tensor.F32, 7, 3),
		NewTensorInfo("f16", tensor.F16, 5),
		NewTensorInfo("bf16", tensor.BF16, 2, 2, 2),
		NewTensorInfo("q8_0", tensor.Q8_0, 64, 3),
		NewTensorInfo("q4_0", tensor.Q4_0, 32, 2, 3, 2),
		NewTensorInfo("q4_k", tensor.Q4_K, 256),
		NewTensorInfo("q6_k", tensor.Q6_K, 256, 2),
		NewTensorInfo("empty", tensor.F32, 0, 4),
		NewTensorInfo("i32", tensor.I32, 9),
	}
	m, err := NewFile(kv, tensors)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	want := map[string][]byte{}
	path := filepath.Join(t.TempDir(), "all.gguf")
	err = WriteFile(path, m, func(ti *TensorInfo, w io.Writer) error {
		b := make([]byte, ti.Size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		want[ti.Name] = b
		// Write in uneven pieces to exercise the streaming.
		for len(b) > 0 {
			n := min(len(b), 1+r.IntN(50))
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Run("the metadata-only file matches the written one", func(t *testing.T) {
		if f.DataOffset != m.DataOffset || f.Size() != m.Size() || f.Alignment != m.Alignment || f.Version != m.Version {
			t.Errorf("data offset %d/%d size %d/%d", f.DataOffset, m.DataOffset, f.Size(), m.Size())
		}
		if !reflect.DeepEqual(f.Tensors, m.Tensors) {
			t.Errorf("tensors differ:\n%+v\n%+v", f.Tensors, m.Tensors)
		}
		if m.TensorData(&m.Tensors[0]) != nil {
			t.Error("a metadata-only file returned tensor data")
		}
	})
	t.Run("every value comes back with its type and contents", func(t *testing.T) {
		if len(f.KV) != len(kv) {
			t.Fatalf("%d KVs, want %d", len(f.KV), len(kv))
		}
		for i, e := range kv {
			g := f.KV[i]
			if g.Key != e.Key || !g.Value.Equal(e.Value) {
				t.Errorf("%s: got %v %v, want %v %v", e.Key, g.Value.Type(), g.Value, e.Value.Type(), e.Value)
			}
		}
	})
	t.Run("every tensor's bytes come back at an aligned offset", func(t *testing.T) {
		for i := range f.Tensors {
			ti := &f.Tensors[i]
			if !bytes.Equal(f.TensorData(ti), want[ti.Name]) {
				t.Errorf("%s: data differs", ti.Name)
			}
			if (f.DataOffset+ti.Offset)%int64(f.Alignment) != 0 {
				t.Errorf("%s at %d is not aligned", ti.Name, f.DataOffset+ti.Offset)
			}
		}
	})
	t.Run("the file ends padded, as ggml writes it", func(t *testing.T) {
		st, _ := os.Stat(path)
		if st.Size() != m.Size() || st.Size()%int64(m.Alignment) != 0 {
			t.Errorf("file is %d bytes, planned %d", st.Size(), m.Size())
		}
	})
}

func TestValueAccessorsConvertOnlyWhereMeaningful(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"a negative int is not a uint", func() bool { _, ok := Int32(-1).Uint(); return !ok }()},
		{"a large uint64 is not an int64", func() bool { _, ok := Uint64(math.MaxUint64).Int(); return !ok }()},
		{"a uint8 is an int", func() bool { n, ok := Uint8(200).Int(); return ok && n == 200 }()},
		{"an int8 keeps its sign", func() bool { n, ok := Int8(-5).Int(); return ok && n == -5 }()},
		{"an integer reads as a float", func() bool { x, ok := Int16(-3).Float(); return ok && x == -3 }()},
		{"a string is not a float", func() bool { _, ok := Str("1").Float(); return !ok }()},
		{"a float is not an int", func() bool { _, ok := Float32(1).Int(); return !ok }()},
		{"the zero Value answers nothing", func() bool {
			var v Value
			_, a := v.Uint()
			_, b := v.Str()
			_, c := v.Bool()
			return !a && !b && !c && !v.Type().Valid()
		}()},
		{"a uint32 array converts to int32s when it fits", func() bool { s, ok := Uint32s([]uint32{1, 2}).Int32s(); return ok && s[1] == 2 }()},
		{"a uint32 array that does not fit int32 is refused", func() bool { _, ok := Uint32s([]uint32{1 << 31}).Int32s(); return !ok }()},
		{"a float array is not an int array", func() bool { _, ok := Float32s([]float32{1}).Int32s(); return !ok }()},
		{"an int array converts to float32s", func() bool { s, ok := Int32s([]int32{-2}).Float32s(); return ok && s[0] == -2 }()},
		{"a string array is not a float array", func() bool { _, ok := Strings([]string{"a"}).Float32s(); return !ok }()},
		{"an empty string array is not a float array either", func() bool { _, ok := Strings(nil).Float32s(); return !ok }()},
		{"an empty array of arrays is not a float array", func() bool { v, _ := Array(TypeArray); _, ok := v.Float32s(); return !ok }()},
		{"out-of-range Index gives the zero Value", func() bool { return !Int32s([]int32{1}).Index(1).Type().Valid() }()},
		{"long arrays print abbreviated", func() bool {
			return Int32s(make([]int32, 100)).String() == "[0, 0, 0, 0, 0, 0, 0, 0, ... (100 int32)]"
		}()},
		{"strings print quoted", func() bool { return Str("a\"b").String() == `"a\"b"` }()},
		{"equal arrays of arrays are Equal", func() bool {
			a, _ := Array(TypeArray, Float32s(nil), Strings([]string{"x"}))
			b, _ := Array(TypeArray, Float32s([]float32{}), Strings([]string{"x"}))
			return a.Equal(b)
		}()},
		{"values of different types are not Equal", func() bool { return !Uint32(1).Equal(Int32(1)) }()},
		{"arrays differing in one element are not Equal", func() bool { return !Strings([]string{"a", "b"}).Equal(Strings([]string{"a", "c"})) }()},
		{"mixed arrays are refused", func() bool { _, err := Array(TypeUint32, Uint32(1), Int32(1)); return err != nil }()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Error("failed")
			}
		})
	}
}

func TestNewFileAndWriterRejectMistakes(t *testing.T) {
	long := strings.Repeat("n", 64)
	cases := []struct {
		name    string
		kv      []KV
		tensors []TensorInfo
		want    string
	}{
		{"duplicate keys", []KV{{"a", Uint8(1)}, {"a", Uint8(2)}}, nil, `duplicate key "a"`},
		{"a value with no type", []KV{{"a", Value{}}}, nil, `key "a": value has no valid type`},
		{"an alignment that is not a power of two", []KV{{"general.alignment", Uint32(24)}}, nil, "power of two"},
		{"an alignment of the wrong type", []KV{{"general.alignment", Uint64(32)}}, nil, "got uint64 32"},
		{"duplicate tensor names", nil, []TensorInfo{NewTensorInfo("t", tensor.F32, 4), NewTensorInfo("t", tensor.F32, 4)}, `duplicate tensor name "t"`},
		{"a name too long for ggml", nil, []TensorInfo{NewTensorInfo(long, tensor.F32, 4)}, "longer than ggml's limit of 63"},
		{"an unknown tensor type", nil, []TensorInfo{NewTensorInfo("t", tensor.DType(77), 4)}, "unknown type id 77"},
		{"a row that is not whole blocks", nil, []TensorInfo{NewTensorInfo("t", tensor.Q8_0, 40)}, "row length 40 is not a multiple of q8_0's block size 32"},
		{"a negative dimension", nil, []TensorInfo{NewTensorInfo("t", tensor.F32, 4, -1)}, "negative dimension -1"},
		{"five dimensions", nil, []TensorInfo{{Name: "t", Type: tensor.F32, NDims: 5}}, "5 dimensions, at most 4 allowed"},
		{"a dimension beyond NDims", nil, []TensorInfo{{Name: "t", Type: tensor.F32, NDims: 1, Ne: [4]int{4, 3, 1, 1}}}, "dimension 1 is 3 but NDims is 1"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			_, err := NewFile(c.kv, c.tensors)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
	m, err := NewFile(nil, []TensorInfo{NewTensorInfo("a", tensor.F32, 4), NewTensorInfo("b", tensor.F32, 4)})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("writing past the last tensor is refused", func(t *testing.T) {
		w, _ := NewWriter(&bytes.Buffer{}, m)
		if _, err := w.Write(make([]byte, 33)); err == nil || !strings.Contains(err.Error(), "1 bytes past the end of the last tensor") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("closing with a tensor incomplete is refused", func(t *testing.T) {
		w, _ := NewWriter(&bytes.Buffer{}, m)
		w.Write(make([]byte, 20))
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), `tensor "b" incomplete (4 of 16 bytes)`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a fill that writes too little is caught and the file removed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "short.gguf")
		err := WriteFile(path, m, func(ti *TensorInfo, w io.Writer) error { _, err := w.Write(make([]byte, 8)); return err })
		if err == nil || !strings.Contains(err.Error(), `tensor "a": fill wrote 8 bytes, not its 16`) {
			t.Errorf("err = %v", err)
		}
		if _, serr := os.Stat(path); !os.IsNotExist(serr) {
			t.Error("partial file left behind")
		}
	})
	t.Run("a fill that writes the next tensor's bytes too is caught at its own tensor", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "long.gguf")
		err := WriteFile(path, m, func(ti *TensorInfo, w io.Writer) error { _, err := w.Write(make([]byte, 32)); return err })
		if err == nil || !strings.Contains(err.Error(), `tensor "a": fill wrote 32 bytes, not its 16`) {
			t.Errorf("err = %v", err)
		}
		if _, serr := os.Stat(path); !os.IsNotExist(serr) {
			t.Error("partial file left behind")
		}
	})
	t.Run("tensors moved from the streaming layout are refused", func(t *testing.T) {
		bad := *m
		bad.Tensors = append([]TensorInfo(nil), m.Tensors...)
		bad.Tensors[1].Offset = 64
		if _, err := NewWriter(&bytes.Buffer{}, &bad); err == nil || !strings.Contains(err.Error(), "streaming puts it at 32") {
			t.Errorf("err = %v", err)
		}
	})
}
