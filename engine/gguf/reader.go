// Package gguf reads and writes GGUF files, the model format of llama.cpp and ggml, versions 2 and 3.
//
// It is modelled on debug/elf: Open maps a file read-only and returns a File whose metadata is parsed and whose
// tensors are zero-copy views into the mapping; Parse does the same over bytes in memory; malformed input gives
// a *FormatError carrying the offset of the bad bytes and what is wrong with them. No count read from the file
// sizes an allocation before it has been checked against the bytes that remain, so a hostile file can make the
// reader fail but not panic or exhaust memory.
//
// Layout (little-endian): "GGUF", version u32, tensor count u64, KV count u64; the KVs (key string, value type
// u32, value); the tensor infos (name string, dims u32, dims × ne u64, ggml type u32, offset u64); padding to
// the alignment; the tensor data, each tensor at its offset relative to the start of the data section. Strings
// are a u64 length and bytes; an array is an element type u32, a count u64 and the elements.
package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"tilelab/engine/tensor"
)

// DefaultAlignment is the alignment of tensor data when general.alignment is absent.
const DefaultAlignment = 32

// MaxNameLen is the longest tensor name ggml accepts (GGML_MAX_NAME is 64 including the terminating NUL).
const MaxNameLen = 63

// maxDepth bounds the nesting of arrays of arrays.
const maxDepth = 8

// File is a parsed GGUF file: its metadata, tensor infos and, when it came from Open or Parse, its bytes.
type File struct {
	Version    uint32
	Alignment  int          // general.alignment, or DefaultAlignment
	KV         []KV         // in file order
	Tensors    []TensorInfo // in file order
	DataOffset int64        // start of the tensor data section

	data    []byte // the whole file; nil for a metadata-only File
	mapped  bool   // data is an mmap to release on Close
	size    int64  // file size (computed for a metadata-only File)
	keys    map[string]int
	names   map[string]int
	path    string
	closeFn func() error
}

// KV is one metadata key and its value.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor. Ne is in ggml order (Ne[0] is the contiguous row length) with 1 for unused
// dimensions; Offset is relative to the File's DataOffset; Size is the tensor's size in bytes.
type TensorInfo struct {
	Name   string
	Type   tensor.DType
	Ne     [4]int
	NDims  int
	Offset int64
	Size   int64
}

// Elems is the tensor's number of elements.
func (t *TensorInfo) Elems() int64 {
	return int64(t.Ne[0]) * int64(t.Ne[1]) * int64(t.Ne[2]) * int64(t.Ne[3])
}

// FormatError reports malformed GGUF data: where, and what is wrong.
type FormatError struct {
	Offset int64  // byte offset in the file of the bad data
	Msg    string // what is wrong
	Path   string // the file, when it was opened by name
}

// Error returns "gguf: offset 0x1f: <what is wrong>", with the file name after "gguf: " when known.
func (e *FormatError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("gguf: %s: offset %#x: %s", e.Path, e.Offset, e.Msg)
	}
	return fmt.Sprintf("gguf: offset %#x: %s", e.Offset, e.Msg)
}

// Open maps the file read-only and parses it. Tensor views returned by TensorData stay valid until Close; they
// are read-only memory, and writing to them crashes the program.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size != int64(int(size)) {
		return nil, fmt.Errorf("gguf: %s: file of %d bytes is too large to map", path, size)
	}
	var data []byte
	mapped := false
	if size > 0 {
		data, err = unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("gguf: %s: mmap: %w", path, err)
		}
		mapped = true
	}
	f, err := Parse(data)
	if err != nil {
		if mapped {
			unix.Munmap(data)
		}
		if fe, ok := err.(*FormatError); ok {
			fe.Path = path
		}
		return nil, err
	}
	f.mapped = mapped
	f.path = path
	return f, nil
}

// Close releases the mapping of a File from Open; its tensor views must not be used afterwards. Close on a File
// from Parse or NewFile does nothing.
func (f *File) Close() error {
	if !f.mapped {
		return nil
	}
	f.mapped = false
	data := f.data
	f.data = nil
	return unix.Munmap(data)
}

// Path is the name the File was opened with, or "".
func (f *File) Path() string { return f.path }

// Size is the size of the file in bytes: its length for a parsed file, and what the Writer will produce for a
// metadata-only File.
func (f *File) Size() int64 { return f.size }

// Get returns the value of a key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// String returns a string value.
func (f *File) String(key string) (string, bool) {
	v, _ := f.Get(key)
	return v.Str()
}

// Uint returns an integer value of any integer type that is not negative.
func (f *File) Uint(key string) (uint64, bool) {
	v, _ := f.Get(key)
	return v.Uint()
}

// Int returns an integer value of any integer type that fits in an int64.
func (f *File) Int(key string) (int64, bool) {
	v, _ := f.Get(key)
	return v.Int()
}

// Float returns a float32 or float64 value, or an integer converted.
func (f *File) Float(key string) (float64, bool) {
	v, _ := f.Get(key)
	return v.Float()
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, bool) {
	v, _ := f.Get(key)
	return v.Bool()
}

// Strings returns an array of strings (shared with the File: do not modify).
func (f *File) Strings(key string) ([]string, bool) {
	v, _ := f.Get(key)
	return v.Strings()
}

// Float32s returns a numeric array as float32 (shared with the File when stored as float32: do not modify).
func (f *File) Float32s(key string) ([]float32, bool) {
	v, _ := f.Get(key)
	return v.Float32s()
}

// Int32s returns an integer array of any integer type converted to int32 (shared with the File when stored as
// int32: do not modify).
func (f *File) Int32s(key string) ([]int32, bool) {
	v, _ := f.Get(key)
	return v.Int32s()
}

// Architecture is general.architecture ("qwen3moe", "llama"), or "".
func (f *File) Architecture() string {
	s, _ := f.String("general.architecture")
	return s
}

// Tensor finds a tensor by name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.names[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns a zero-copy view of a tensor's bytes, or nil for a metadata-only File. The view's capacity
// ends with the tensor, so appending to it cannot touch the next one.
func (f *File) TensorData(t *TensorInfo) []byte {
	if f.data == nil {
		return nil
	}
	start := f.DataOffset + t.Offset
	end := start + t.Size
	if t.Offset < 0 || t.Size < 0 || end > int64(len(f.data)) {
		return nil
	}
	return f.data[start:end:end]
}

// reader decodes little-endian fields with a sticky error: after the first failure every read returns zero and
// the error stays put, so the parser checks it only where a value decides what happens next.
type reader struct {
	data []byte
	off  int64
	err  *FormatError
}

func (r *reader) fail(off int64, format string, args ...any) {
	if r.err == nil {
		r.err = &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
}

func (r *reader) left() int64 { return int64(len(r.data)) - r.off }

// take returns the next n bytes, or fails naming what was being read.
func (r *reader) take(n int64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.left() {
		r.fail(r.off, "truncated: %s needs %d bytes, %d left", what, n, r.left())
		return nil
	}
	b := r.data[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if b := r.take(8, what); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) str(what string) string {
	at := r.off
	n := r.u64(what + " length")
	if r.err != nil {
		return ""
	}
	if n > uint64(r.left()) {
		r.fail(at, "%s length %d exceeds the %d bytes left", what, n, r.left())
		return ""
	}
	return string(r.take(int64(n), what))
}

// count reads an element count and checks that n elements of at least minSize bytes each fit in what is left,
// before anything is allocated for them.
func (r *reader) count(what string, minSize int64) int {
	at := r.off
	n := r.u64(what)
	if r.err != nil {
		return 0
	}
	if n > uint64(r.left()/minSize) {
		r.fail(at, "%s %d is absurd: %d elements of at least %d bytes cannot fit in the %d bytes left", what, n, n, minSize, r.left())
		return 0
	}
	return int(n)
}

// Parse reads a GGUF file held in memory. The File's tensor views point into data, which must not change.
func Parse(data []byte) (*File, error) {
	r := &reader{data: data}
	f, err := parse(r)
	if err != nil {
		return nil, err
	}
	f.data = data
	f.size = int64(len(data))
	return f, nil
}

func parse(r *reader) (*File, error) {
	magic := r.take(4, "magic")
	if r.err != nil {
		return nil, r.err
	}
	if string(magic) != "GGUF" {
		r.fail(0, "bad magic %q, want \"GGUF\"", magic)
		return nil, r.err
	}
	f := &File{Alignment: DefaultAlignment, keys: map[string]int{}, names: map[string]int{}}
	f.Version = r.u32("version")
	switch {
	case r.err != nil:
		return nil, r.err
	case f.Version == 1:
		r.fail(4, "version 1 is not supported (only 2 and 3)")
	case f.Version&0xffff == 0 && f.Version != 0:
		r.fail(4, "version %#x looks byte-swapped: big-endian files are not supported", f.Version)
	case f.Version != 2 && f.Version != 3:
		r.fail(4, "unsupported version %d (only 2 and 3)", f.Version)
	}
	// Minimum encoded sizes: a tensor info is a name length (8), dims (4), type (4) and offset (8); a KV is a key
	// length (8), a type (4) and at least one byte of value.
	atTensors := r.off
	nTensors := r.u64("tensor count")
	atKV := r.off
	nKV := r.u64("KV count")
	if r.err != nil {
		return nil, r.err
	}
	if nKV > uint64(r.left()/13) {
		r.fail(atKV, "KV count %d is absurd for the %d bytes left", nKV, r.left())
		return nil, r.err
	}
	if nTensors > uint64(r.left()/24) {
		r.fail(atTensors, "tensor count %d is absurd for the %d bytes left", nTensors, r.left())
		return nil, r.err
	}
	f.KV = make([]KV, 0, nKV)
	for i := 0; i < int(nKV); i++ {
		at := r.off
		key := r.str("key")
		if r.err != nil {
			return nil, r.err
		}
		if _, dup := f.keys[key]; dup {
			r.fail(at, "duplicate key %q", key)
			return nil, r.err
		}
		v := r.value(key, 0)
		if r.err != nil {
			return nil, r.err
		}
		f.keys[key] = len(f.KV)
		f.KV = append(f.KV, KV{key, v})
		if key == "general.alignment" {
			a, ok := v.Uint()
			if v.Type() != TypeUint32 || !ok || a == 0 || a&(a-1) != 0 {
				r.fail(at, "general.alignment must be a uint32 power of two, got %v %v", v.Type(), v)
				return nil, r.err
			}
			f.Alignment = int(a)
		}
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	starts := make([]int64, 0, nTensors) // file offset of each tensor info, for error messages
	for i := 0; i < int(nTensors); i++ {
		at := r.off
		t := r.tensorInfo()
		if r.err != nil {
			return nil, r.err
		}
		if _, dup := f.names[t.Name]; dup {
			r.fail(at, "duplicate tensor name %q", t.Name)
			return nil, r.err
		}
		f.names[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
		starts = append(starts, at)
	}
	f.DataOffset = alignUp(r.off, int64(f.Alignment))
	dataLen := int64(len(r.data)) - f.DataOffset
	if err := checkLayout(f, starts, dataLen); err != nil {
		return nil, err
	}
	return f, nil
}

// checkLayout checks that every tensor is aligned, inside the data section, and clear of the others.
func checkLayout(f *File, starts []int64, dataLen int64) *FormatError {
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	for _, i := range order {
		t := &f.Tensors[i]
		if t.Offset%int64(f.Alignment) != 0 {
			return &FormatError{Offset: starts[i], Msg: fmt.Sprintf("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)}
		}
		if t.Size > 0 && (dataLen < 0 || t.Offset > dataLen || t.Size > dataLen-t.Offset) {
			return &FormatError{Offset: starts[i], Msg: fmt.Sprintf("tensor %q: data [%d, %d) runs past the end of the file (data section is %d bytes from %#x)", t.Name, t.Offset, t.Offset+t.Size, max(dataLen, 0), f.DataOffset)}
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	for k := 1; k < len(order); k++ {
		p, t := &f.Tensors[order[k-1]], &f.Tensors[order[k]]
		if p.Size > 0 && t.Size > 0 && t.Offset < p.Offset+p.Size {
			return &FormatError{Offset: starts[order[k]], Msg: fmt.Sprintf("tensor %q at data offset %d overlaps tensor %q [%d, %d)", t.Name, t.Offset, p.Name, p.Offset, p.Offset+p.Size)}
		}
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// value reads a value's type and the value.
func (r *reader) value(key string, depth int) Value {
	at := r.off
	t := ValueType(r.u32("value type"))
	if r.err != nil {
		return Value{}
	}
	if !t.Valid() {
		r.fail(at, "key %q: unknown value type %d", key, uint32(t))
		return Value{}
	}
	return r.valueOf(t, key, depth)
}

// valueOf reads a value of a known type.
func (r *reader) valueOf(t ValueType, key string, depth int) Value {
	switch t {
	case TypeString:
		return Str(r.str("string value of " + key))
	case TypeArray:
		return r.array(key, depth+1)
	}
	b := r.take(int64(t.size()), t.String()+" value of "+key)
	if b == nil {
		return Value{}
	}
	return Value{tp: uint32(t) + 1, bits: decodeScalar(t, b)}
}

// decodeScalar reads a fixed-size scalar into Value.bits form (signed integers sign-extended).
func decodeScalar(t ValueType, b []byte) uint64 {
	switch t {
	case TypeUint8:
		return uint64(b[0])
	case TypeInt8:
		return uint64(int64(int8(b[0])))
	case TypeBool:
		if b[0] != 0 {
			return 1
		}
		return 0
	case TypeUint16:
		return uint64(binary.LittleEndian.Uint16(b))
	case TypeInt16:
		return uint64(int64(int16(binary.LittleEndian.Uint16(b))))
	case TypeUint32, TypeFloat32:
		return uint64(binary.LittleEndian.Uint32(b))
	case TypeInt32:
		return uint64(int64(int32(binary.LittleEndian.Uint32(b))))
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) array(key string, depth int) Value {
	at := r.off
	if depth > maxDepth {
		r.fail(at, "key %q: arrays nested more than %d deep", key, maxDepth)
		return Value{}
	}
	elem := ValueType(r.u32("array element type"))
	if r.err != nil {
		return Value{}
	}
	if !elem.Valid() {
		r.fail(at, "key %q: unknown array element type %d", key, uint32(elem))
		return Value{}
	}
	minSize := int64(elem.size())
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	n := r.count("array length of "+key, minSize)
	if r.err != nil {
		return Value{}
	}
	switch elem {
	case TypeString:
		s := make([]string, n)
		for i := range s {
			s[i] = r.str(fmt.Sprintf("element %d of %s", i, key))
			if r.err != nil {
				return Value{}
			}
		}
		return Strings(s)
	case TypeArray:
		vs := make([]Value, n)
		for i := range vs {
			vs[i] = r.valueOf(TypeArray, key, depth)
			if r.err != nil {
				return Value{}
			}
		}
		return mkArray(TypeArray, vs, n)
	}
	b := r.take(int64(n)*minSize, "array "+key)
	if b == nil {
		return Value{}
	}
	a := newScalarArray(elem, n)
	for i := 0; i < n; i++ {
		a.set(i, decodeScalar(elem, b[int64(i)*minSize:]))
	}
	return Value{tp: uint32(TypeArray) + 1, arr: a}
}

func (r *reader) tensorInfo() TensorInfo {
	at := r.off
	var t TensorInfo
	t.Name = r.str("tensor name")
	if r.err != nil {
		return t
	}
	if len(t.Name) > MaxNameLen {
		r.fail(at, "tensor name %.40q... is %d bytes, longer than ggml's limit of %d", t.Name, len(t.Name), MaxNameLen)
		return t
	}
	atDims := r.off
	nd := r.u32("dimension count")
	if r.err != nil {
		return t
	}
	if nd > 4 {
		r.fail(atDims, "tensor %q: %d dimensions, at most 4 allowed", t.Name, nd)
		return t
	}
	t.NDims = int(nd)
	t.Ne = [4]int{1, 1, 1, 1}
	elems := int64(1)
	for d := 0; d < int(nd); d++ {
		atNe := r.off
		ne := r.u64("dimension")
		if r.err != nil {
			return t
		}
		if ne > math.MaxInt64 || elems != 0 && int64(ne) > math.MaxInt64/elems {
			r.fail(atNe, "tensor %q: dimension %d of size %d is absurd (the element count overflows)", t.Name, d, ne)
			return t
		}
		t.Ne[d] = int(ne)
		elems *= int64(ne)
	}
	atType := r.off
	typ := tensor.DType(r.u32("tensor type"))
	if r.err != nil {
		return t
	}
	if !typ.Known() {
		r.fail(atType, "tensor %q: %s is not a supported tensor type", t.Name, typeName(typ))
		return t
	}
	t.Type = typ
	if t.Ne[0]%typ.BlockSize() != 0 {
		r.fail(atType, "tensor %q: row length %d is not a multiple of %v's block size %d", t.Name, t.Ne[0], typ, typ.BlockSize())
		return t
	}
	t.Size = tensorSize(typ, t.Ne)
	if t.Size < 0 {
		r.fail(atDims, "tensor %q: size of %v %v overflows", t.Name, t.Ne, typ)
		return t
	}
	off := r.u64("tensor offset")
	if r.err != nil {
		return t
	}
	if off > math.MaxInt64/2 {
		r.fail(r.off-8, "tensor %q: data offset %d is absurd", t.Name, off)
		return t
	}
	t.Offset = int64(off)
	return t
}

// tensorSize is the byte size of a tensor, or -1 if it overflows an int64.
func tensorSize(typ tensor.DType, ne [4]int) int64 {
	blocks := int64(ne[0] / typ.BlockSize())
	size := blocks * int64(typ.BlockBytes())
	if blocks != 0 && size/blocks != int64(typ.BlockBytes()) {
		return -1
	}
	for _, n := range ne[1:] {
		if n != 0 && size > math.MaxInt64/int64(n) {
			return -1
		}
		size *= int64(n)
	}
	return size
}

// ggmlTypeNames names ggml's type ids, so an error about a type TileLab does not support still says which it is.
var ggmlTypeNames = map[uint32]string{
	0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 9: "q8_1", 10: "q2_k", 11: "q3_k",
	12: "q4_k", 13: "q5_k", 14: "q6_k", 15: "q8_k", 16: "iq2_xxs", 17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s",
	20: "iq4_nl", 21: "iq3_s", 22: "iq2_s", 23: "iq4_xs", 24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64",
	29: "iq1_m", 30: "bf16", 34: "tq1_0", 35: "tq2_0", 39: "mxfp4",
}

func typeName(t tensor.DType) string {
	if n, ok := ggmlTypeNames[uint32(t)]; ok {
		return fmt.Sprintf("type %d (%s)", uint32(t), n)
	}
	return fmt.Sprintf("unknown type id %d", uint32(t))
}
