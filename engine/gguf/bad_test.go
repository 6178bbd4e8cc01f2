package gguf

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// enc hand-assembles GGUF bytes, good or bad; mark records where the bad field starts.
type enc struct {
	b    []byte
	mark int64
}

func (e *enc) u32(v uint32) *enc { e.b = binary.LittleEndian.AppendUint32(e.b, v); return e }
func (e *enc) u64(v uint64) *enc { e.b = binary.LittleEndian.AppendUint64(e.b, v); return e }
func (e *enc) raw(s string) *enc { e.b = append(e.b, s...); return e }
func (e *enc) str(s string) *enc { return e.u64(uint64(len(s))).raw(s) }
func (e *enc) here() *enc        { e.mark = int64(len(e.b)); return e }
func (e *enc) pad(a int) *enc {
	for len(e.b)%a != 0 {
		e.b = append(e.b, 0)
	}
	return e
}
func (e *enc) zeros(n int) *enc { e.b = append(e.b, make([]byte, n)...); return e }

// head starts a version-3 file with the given counts.
func head(nTensors, nKV uint64) *enc {
	return (&enc{}).raw("GGUF").u32(3).u64(nTensors).u64(nKV)
}

// tinfo appends a tensor info.
func (e *enc) tinfo(name string, typ uint32, off uint64, ne ...uint64) *enc {
	e.str(name).u32(uint32(len(ne)))
	for _, n := range ne {
		e.u64(n)
	}
	return e.u32(typ).u64(off)
}

func TestParseRejectsBadInputWithOffsetAndReason(t *testing.T) {
	cases := []struct {
		name  string
		build func() *enc
		want  string
	}{
		{"an empty input is truncated at the magic", func() *enc { return &enc{} },
			"truncated: magic needs 4 bytes, 0 left"},
		{"a wrong magic is quoted", func() *enc { return (&enc{}).raw("GGML").u32(3).u64(0).u64(0) },
			`bad magic "GGML", want "GGUF"`},
		{"version 1 is refused", func() *enc { e := (&enc{}).raw("GGUF"); e.here().u32(1).u64(0).u64(0); return e },
			"version 1 is not supported (only 2 and 3)"},
		{"an unknown version is refused", func() *enc { e := (&enc{}).raw("GGUF"); e.here().u32(7).u64(0).u64(0); return e },
			"unsupported version 7 (only 2 and 3)"},
		{"a big-endian file is recognised", func() *enc { e := (&enc{}).raw("GGUF"); e.here().u32(0x03000000).u64(0).u64(0); return e },
			"looks byte-swapped: big-endian files are not supported"},
		{"a header cut short is truncated", func() *enc { e := (&enc{}).raw("GGUF").u32(3); e.here().u32(0); return e },
			"truncated: tensor count needs 8 bytes, 4 left"},
		{"an absurd KV count is refused before allocating", func() *enc { e := (&enc{}).raw("GGUF").u32(3).u64(0); e.here().u64(1 << 40); return e },
			"KV count 1099511627776 is absurd for the 0 bytes left"},
		{"an absurd tensor count is refused before allocating", func() *enc { e := (&enc{}).raw("GGUF").u32(3); e.here().u64(1 << 40).u64(0); return e },
			"tensor count 1099511627776 is absurd"},
		{"a key longer than the file is refused", func() *enc { e := head(0, 1); e.here().u64(1e9).raw("abcdefghijklm"); return e },
			"key length 1000000000 exceeds the 13 bytes left"},
		{"an unknown value type is named with its key", func() *enc { e := head(0, 1).str("a"); e.here().u32(13).u64(0); return e },
			`key "a": unknown value type 13`},
		{"an unknown array element type is named", func() *enc { e := head(0, 1).str("a").u32(9); e.here().u32(20).u64(0); return e },
			`key "a": unknown array element type 20`},
		{"an absurd array length is refused before allocating", func() *enc { e := head(0, 1).str("a").u32(9).u32(4); e.here().u64(1 << 50).u32(0); return e },
			"array length of a 1125899906842624 is absurd: 1125899906842624 elements of at least 4 bytes cannot fit in the 4 bytes left"},
		{"an absurd string-array length is refused before allocating", func() *enc { e := head(0, 1).str("a").u32(9).u32(8); e.here().u64(1 << 20).u64(0); return e },
			"elements of at least 8 bytes cannot fit in the 8 bytes left"},
		{"arrays nested too deep are refused", func() *enc {
			e := head(0, 1).str("a").u32(9)
			for i := 0; i < 8; i++ {
				e.u32(9).u64(1)
			}
			e.here().u32(4).u64(1).u32(7)
			return e
		}, `key "a": arrays nested more than 8 deep`},
		{"a string value cut short is truncated", func() *enc { e := head(0, 1).str("a").u32(8); e.here().u64(10).raw("abc"); return e },
			"string value of a length 10 exceeds the 3 bytes left"},
		{"a scalar value cut short is truncated", func() *enc { e := head(0, 1).str("a").u32(10); e.here().u32(1); return e },
			"truncated: uint64 value of a needs 8 bytes, 4 left"},
		{"a duplicate key is refused", func() *enc { e := head(0, 2).str("a").u32(4).u32(1); e.here().str("a").u32(4).u32(2); return e },
			`duplicate key "a"`},
		{"an alignment that is not a power of two is refused", func() *enc { e := head(0, 1); e.here().str("general.alignment").u32(4).u32(48); return e },
			"general.alignment must be a uint32 power of two, got uint32 48"},
		{"an alignment of the wrong type is refused", func() *enc { e := head(0, 1); e.here().str("general.alignment").u32(10).u64(32); return e },
			"general.alignment must be a uint32 power of two, got uint64 32"},
		{"a tensor name longer than ggml allows is refused", func() *enc { e := head(1, 0); e.here().tinfo(strings.Repeat("x", 64), 0, 0, 4); return e },
			"is 64 bytes, longer than ggml's limit of 63"},
		{"more than four dimensions are refused", func() *enc { e := head(1, 0).str("t"); e.here().u32(5).zeros(40); return e },
			`tensor "t": 5 dimensions, at most 4 allowed`},
		{"a dimension whose element count overflows is refused", func() *enc { e := head(1, 0).str("t").u32(2).u64(1 << 40); e.here().u64(1 << 40); return e },
			`tensor "t": dimension 1 of size 1099511627776 is absurd (the element count overflows)`},
		{"a negative dimension is refused", func() *enc { e := head(1, 0).str("t").u32(1); e.here().u64(1 << 63).u32(0).u64(0); return e },
			`tensor "t": dimension 0 of size 9223372036854775808 is absurd`},
		{"an unknown tensor type id is refused", func() *enc { e := head(1, 0).str("t").u32(1).u64(32); e.here().u32(99).u64(0); return e },
			`tensor "t": unknown type id 99 is not a supported tensor type`},
		{"a ggml type TileLab does not support is named", func() *enc { e := head(1, 0).str("t").u32(1).u64(256); e.here().u32(13).u64(0); return e },
			`tensor "t": type 13 (q5_k) is not a supported tensor type`},
		{"a row that is not whole blocks is refused", func() *enc { e := head(1, 0).str("t").u32(1).u64(33); e.here().u32(2).u64(0); return e },
			`tensor "t": row length 33 is not a multiple of q4_0's block size 32`},
		{"an absurd data offset is refused", func() *enc { e := head(1, 0).str("t").u32(1).u64(4).u32(0); e.here().u64(1 << 63); return e },
			`tensor "t": data offset 9223372036854775808 is absurd`},
		{"a tensor info cut short is truncated", func() *enc { e := head(1, 0).str("t").u32(2).u64(4); e.here().u32(0); return e },
			"truncated: dimension needs 8 bytes, 4 left"},
		{"a misaligned offset is refused", func() *enc { e := head(1, 0); e.here().tinfo("t", 0, 8, 4); e.pad(32).zeros(64); return e },
			`tensor "t": offset 8 is not a multiple of the alignment 32`},
		{"tensor data past the end of the file is refused", func() *enc { e := head(1, 0); e.here().tinfo("t", 0, 0, 16); e.pad(32).zeros(63); return e },
			`tensor "t": data [0, 64) runs past the end of the file (data section is 63 bytes from 0x40)`},
		{"a tensor whose data section is missing entirely is refused", func() *enc { e := head(1, 0); e.here().tinfo("t", 0, 0, 16); return e },
			`tensor "t": data [0, 64) runs past the end of the file (data section is 0 bytes`},
		{"overlapping tensors are refused", func() *enc {
			e := head(2, 0).tinfo("a", 0, 0, 16)
			e.here().tinfo("b", 0, 32, 16)
			e.pad(32).zeros(96)
			return e
		}, `tensor "b" at data offset 32 overlaps tensor "a" [0, 64)`},
		{"duplicate tensor names are refused", func() *enc {
			e := head(2, 0).tinfo("a", 0, 0, 8)
			e.here().tinfo("a", 0, 32, 8)
			e.pad(32).zeros(64)
			return e
		}, `duplicate tensor name "a"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.build()
			f, err := Parse(e.b)
			if err == nil {
				t.Fatalf("parsed without error: %d KVs, %d tensors", len(f.KV), len(f.Tensors))
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is a %T, not a *FormatError", err, err)
			}
			if !strings.Contains(fe.Msg, c.want) {
				t.Errorf("message %q does not contain %q", fe.Msg, c.want)
			}
			if fe.Offset != e.mark {
				t.Errorf("offset %#x, want %#x (%v)", fe.Offset, e.mark, err)
			}
			if want := "gguf: offset 0x"; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err, want)
			}
		})
	}
}

func TestParseAcceptsWellFormedEdgeCases(t *testing.T) {
	cases := []struct {
		name  string
		build func() *enc
		check func(t *testing.T, f *File)
	}{
		{"version 2 is read like version 3", func() *enc { return (&enc{}).raw("GGUF").u32(2).u64(0).u64(1).str("k").u32(4).u32(5) },
			func(t *testing.T, f *File) {
				if n, _ := f.Uint("k"); f.Version != 2 || n != 5 {
					t.Errorf("version %d, k = %d", f.Version, n)
				}
			}},
		{"a custom alignment places the data section", func() *enc {
			e := head(1, 1).str("general.alignment").u32(4).u32(64).tinfo("t", 0, 0, 4)
			return e.pad(64).zeros(16)
		}, func(t *testing.T, f *File) {
			if f.Alignment != 64 || f.DataOffset%64 != 0 || len(f.TensorData(&f.Tensors[0])) != 16 {
				t.Errorf("alignment %d data offset %d", f.Alignment, f.DataOffset)
			}
		}},
		{"a zero-dimensional tensor is a scalar, as in ggml", func() *enc { return head(1, 0).tinfo("s", 0, 0).pad(32).zeros(4) },
			func(t *testing.T, f *File) {
				if ti := f.Tensors[0]; ti.NDims != 0 || ti.Ne != [4]int{1, 1, 1, 1} || ti.Size != 4 {
					t.Errorf("got %+v", ti)
				}
			}},
		{"an empty tensor needs no data", func() *enc { return head(1, 0).tinfo("e", 0, 0, 0, 4) },
			func(t *testing.T, f *File) {
				if ti := f.Tensors[0]; ti.Size != 0 || ti.Ne != [4]int{0, 4, 1, 1} {
					t.Errorf("got %+v", ti)
				}
			}},
		{"a nested array is read", func() *enc {
			return head(0, 1).str("n").u32(9).u32(9).u64(2).u32(4).u64(1).u32(7).u32(8).u64(1).str("x")
		}, func(t *testing.T, f *File) {
			v, _ := f.Get("n")
			a, b := v.Index(0), v.Index(1)
			if v.Len() != 2 || v.ElemType() != TypeArray || a.ElemType() != TypeUint32 || b.ElemType() != TypeString {
				t.Fatalf("got %v", v)
			}
			if n, _ := a.Index(0).Uint(); n != 7 {
				t.Errorf("n[0][0] = %d", n)
			}
			if s, _ := b.Strings(); len(s) != 1 || s[0] != "x" {
				t.Errorf("n[1] = %v", s)
			}
		}},
		{"a non-zero bool byte reads as true", func() *enc { return head(0, 1).str("b").u32(7).raw("\x02") },
			func(t *testing.T, f *File) {
				if b, ok := f.Bool("b"); !ok || !b {
					t.Errorf("b = %v, %v", b, ok)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.build().b)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, f)
		})
	}
}
