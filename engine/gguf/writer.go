package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"tilelab/engine/tensor"
)

// NewTensorInfo describes a tensor for NewFile by name, type and shape in ggml order (ne[0] is the row length);
// missing dimensions are 1.
func NewTensorInfo(name string, typ tensor.DType, ne ...int) TensorInfo {
	t := TensorInfo{Name: name, Type: typ, Ne: [4]int{1, 1, 1, 1}, NDims: len(ne)}
	copy(t.Ne[:], ne)
	return t
}

// NewFile builds a metadata-only File, the one Open would return for the file a Writer makes from it: version 3,
// the alignment of general.alignment (default 32), tensors laid out in the given order, each at the next aligned
// offset. The tensors' Offset and Size are computed (any given values are ignored). NDims 0 means "infer from
// Ne", as ggml does: the highest dimension above 1, and at least 1; in that case a 0 in Ne also means 1.
//
// It checks what llama.cpp's loader would: unique keys and names, names of at most 63 bytes, known tensor types,
// row lengths that are whole blocks, and a valid general.alignment.
func NewFile(kv []KV, tensors []TensorInfo) (*File, error) {
	f := &File{
		Version:   3,
		Alignment: DefaultAlignment,
		KV:        append([]KV(nil), kv...),
		Tensors:   append([]TensorInfo(nil), tensors...),
		keys:      make(map[string]int, len(kv)),
		names:     make(map[string]int, len(tensors)),
	}
	header := int64(4 + 4 + 8 + 8)
	for i, e := range f.KV {
		if _, dup := f.keys[e.Key]; dup {
			return nil, fmt.Errorf("gguf: duplicate key %q", e.Key)
		}
		f.keys[e.Key] = i
		n, err := valueSize(e.Value, e.Key, 0)
		if err != nil {
			return nil, err
		}
		header += 8 + int64(len(e.Key)) + 4 + n
		if e.Key == "general.alignment" {
			a, ok := e.Value.Uint()
			if e.Value.Type() != TypeUint32 || !ok || a == 0 || a&(a-1) != 0 {
				return nil, fmt.Errorf("gguf: general.alignment must be a uint32 power of two, got %v %v", e.Value.Type(), e.Value)
			}
			f.Alignment = int(a)
		}
	}
	var off int64
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if err := normalize(t); err != nil {
			return nil, err
		}
		if _, dup := f.names[t.Name]; dup {
			return nil, fmt.Errorf("gguf: duplicate tensor name %q", t.Name)
		}
		f.names[t.Name] = i
		t.Offset = off
		off = alignUp(off+t.Size, int64(f.Alignment))
		header += 8 + int64(len(t.Name)) + 4 + 8*int64(t.NDims) + 4 + 8
	}
	f.DataOffset = alignUp(header, int64(f.Alignment))
	f.size = f.DataOffset + off
	return f, nil
}

// normalize checks one tensor info for NewFile, fills in NDims and unused dimensions, and computes Size.
func normalize(t *TensorInfo) error {
	if len(t.Name) > MaxNameLen {
		return fmt.Errorf("gguf: tensor name %q is %d bytes, longer than ggml's limit of %d", t.Name, len(t.Name), MaxNameLen)
	}
	if !t.Type.Known() {
		return fmt.Errorf("gguf: tensor %q: %s is not a supported tensor type", t.Name, typeName(t.Type))
	}
	if t.NDims < 0 || t.NDims > 4 {
		return fmt.Errorf("gguf: tensor %q: %d dimensions, at most 4 allowed", t.Name, t.NDims)
	}
	if t.NDims == 0 {
		for d := range t.Ne {
			if t.Ne[d] == 0 {
				t.Ne[d] = 1
			}
			if t.Ne[d] > 1 {
				t.NDims = d + 1
			}
		}
		t.NDims = max(t.NDims, 1)
	}
	for d := range t.Ne {
		switch {
		case d >= t.NDims && t.Ne[d] <= 1:
			t.Ne[d] = 1
		case d >= t.NDims:
			return fmt.Errorf("gguf: tensor %q: dimension %d is %d but NDims is %d", t.Name, d, t.Ne[d], t.NDims)
		case t.Ne[d] < 0:
			return fmt.Errorf("gguf: tensor %q: negative dimension %d", t.Name, t.Ne[d])
		}
	}
	if t.Ne[0]%t.Type.BlockSize() != 0 {
		return fmt.Errorf("gguf: tensor %q: row length %d is not a multiple of %v's block size %d", t.Name, t.Ne[0], t.Type, t.Type.BlockSize())
	}
	if t.Size = tensorSize(t.Type, t.Ne); t.Size < 0 {
		return fmt.Errorf("gguf: tensor %q: size of %v %v overflows", t.Name, t.Ne, t.Type)
	}
	return nil
}

// valueSize is the encoded size of a value after its type id, and checks the value is well formed.
func valueSize(v Value, key string, depth int) (int64, error) {
	t := v.Type()
	switch {
	case !t.Valid():
		return 0, fmt.Errorf("gguf: key %q: value has no valid type", key)
	case t == TypeString:
		return 8 + int64(len(v.str)), nil
	case t != TypeArray:
		return int64(t.size()), nil
	}
	if depth >= maxDepth {
		return 0, fmt.Errorf("gguf: key %q: arrays nested more than %d deep", key, maxDepth)
	}
	a := v.arr
	n := int64(4 + 8)
	switch d := a.data.(type) {
	case []string:
		for _, s := range d {
			n += 8 + int64(len(s))
		}
	case []Value:
		for _, e := range d {
			if e.Type() != TypeArray {
				return 0, fmt.Errorf("gguf: key %q: array of arrays holds a %v", key, e.Type())
			}
			m, err := valueSize(e, key, depth+1)
			if err != nil {
				return 0, err
			}
			n += m
		}
	default:
		n += int64(a.n) * int64(a.elem.size())
	}
	return n, nil
}

// appendValue encodes a value (without its type id, which the caller writes).
func appendValue(b []byte, v Value) []byte {
	le := binary.LittleEndian
	switch t := v.Type(); t {
	case TypeString:
		b = le.AppendUint64(b, uint64(len(v.str)))
		return append(b, v.str...)
	case TypeArray:
		a := v.arr
		b = le.AppendUint32(b, uint32(a.elem))
		b = le.AppendUint64(b, uint64(a.n))
		switch d := a.data.(type) {
		case []string:
			for _, s := range d {
				b = le.AppendUint64(b, uint64(len(s)))
				b = append(b, s...)
			}
		case []Value:
			for _, e := range d {
				b = appendValue(b, e)
			}
		default:
			for i := 0; i < a.n; i++ {
				b = appendScalar(b, a.elem, a.rawBits(i))
			}
		}
		return b
	default:
		return appendScalar(b, t, v.bits)
	}
}

func appendScalar(b []byte, t ValueType, bits uint64) []byte {
	le := binary.LittleEndian
	switch t.size() {
	case 1:
		return append(b, byte(bits))
	case 2:
		return le.AppendUint16(b, uint16(bits))
	case 4:
		return le.AppendUint32(b, uint32(bits))
	}
	return le.AppendUint64(b, bits)
}

// Header encodes the File's header: everything before the tensor data, padding included (DataOffset bytes).
func (f *File) Header() []byte {
	le := binary.LittleEndian
	b := make([]byte, 0, f.DataOffset)
	b = append(b, "GGUF"...)
	b = le.AppendUint32(b, 3)
	b = le.AppendUint64(b, uint64(len(f.Tensors)))
	b = le.AppendUint64(b, uint64(len(f.KV)))
	for _, e := range f.KV {
		b = le.AppendUint64(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
		b = le.AppendUint32(b, uint32(e.Value.Type()))
		b = appendValue(b, e.Value)
	}
	for _, t := range f.Tensors {
		b = le.AppendUint64(b, uint64(len(t.Name)))
		b = append(b, t.Name...)
		b = le.AppendUint32(b, uint32(t.NDims))
		for d := 0; d < t.NDims; d++ {
			b = le.AppendUint64(b, uint64(t.Ne[d]))
		}
		b = le.AppendUint32(b, uint32(t.Type))
		b = le.AppendUint64(b, uint64(t.Offset))
	}
	for int64(len(b)) < alignUp(int64(len(b)), int64(f.Alignment)) {
		b = append(b, 0)
	}
	return b
}

// Writer streams a GGUF file: NewWriter writes the header, then Write takes the tensors' bytes in file order,
// in pieces of any size, and inserts the alignment padding between tensors. Nothing but the header is held in
// memory, so files larger than memory stream straight to disk.
type Writer struct {
	w    io.Writer
	f    *File
	cur  int   // index of the tensor the next byte belongs to
	done int64 // bytes of it already written
	err  error
}

// NewWriter writes the header of f to w and returns a Writer for the tensor data. f is typically from NewFile;
// its tensors must be laid out as NewFile lays them out (in order, each at the next aligned offset).
func NewWriter(w io.Writer, f *File) (*Writer, error) {
	var off int64
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.Offset != off {
			return nil, fmt.Errorf("gguf: writer: tensor %q is at data offset %d, but streaming puts it at %d", t.Name, t.Offset, off)
		}
		off = alignUp(off+t.Size, int64(f.Alignment))
	}
	h := f.Header()
	if int64(len(h)) != f.DataOffset {
		return nil, fmt.Errorf("gguf: writer: header encodes to %d bytes but DataOffset is %d", len(h), f.DataOffset)
	}
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	gw := &Writer{w: w, f: f}
	gw.skipEmpty()
	return gw, nil
}

// skipEmpty moves past tensors with no bytes, which take no space.
func (w *Writer) skipEmpty() {
	for w.cur < len(w.f.Tensors) && w.f.Tensors[w.cur].Size == 0 {
		w.cur++
	}
}

var zeros [256]byte

// Write appends tensor data. A write may span tensors; it fails if it goes past the last tensor.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.cur >= len(w.f.Tensors) {
			w.err = fmt.Errorf("gguf: writer: %d bytes past the end of the last tensor", len(p))
			return written, w.err
		}
		t := &w.f.Tensors[w.cur]
		n := min(int64(len(p)), t.Size-w.done)
		m, err := w.w.Write(p[:n])
		written += m
		w.done += int64(m)
		if err != nil {
			w.err = err
			return written, err
		}
		p = p[n:]
		if w.done == t.Size {
			for pad := alignUp(t.Size, int64(w.f.Alignment)) - t.Size; pad > 0; {
				k := min(pad, int64(len(zeros)))
				if _, err := w.w.Write(zeros[:k]); err != nil {
					w.err = err
					return written, err
				}
				pad -= k
			}
			w.cur++
			w.done = 0
			w.skipEmpty()
		}
	}
	return written, nil
}

// Tensor is the tensor the next written byte belongs to, or nil when all are complete.
func (w *Writer) Tensor() *TensorInfo {
	if w.cur >= len(w.f.Tensors) {
		return nil
	}
	return &w.f.Tensors[w.cur]
}

// Close checks that every tensor was written in full. It does not close the underlying io.Writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if t := w.Tensor(); t != nil {
		return fmt.Errorf("gguf: writer: closed with tensor %q incomplete (%d of %d bytes) and %d tensors after it", t.Name, w.done, t.Size, len(w.f.Tensors)-w.cur-1)
	}
	return nil
}

// WriteFile writes f to path, asking fill for each tensor's bytes in order (fill writes exactly t.Size bytes to
// w). On error the partial file is removed.
func WriteFile(path string, f *File, fill func(t *TensorInfo, w io.Writer) error) (err error) {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	bw := bufio.NewWriterSize(out, 1<<20)
	gw, err := NewWriter(bw, f)
	if err != nil {
		return err
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		// Count each fill's bytes: the Writer alone would take one that runs on into the next tensor and blame
		// that tensor's fill, or nobody's when the sizes happen to add up.
		cw := &countingWriter{w: gw}
		if err := fill(t, cw); err != nil {
			return fmt.Errorf("gguf: writing tensor %q: %w", t.Name, err)
		}
		if cw.n != t.Size {
			return fmt.Errorf("gguf: writing tensor %q: fill wrote %d bytes, not its %d", t.Name, cw.n, t.Size)
		}
	}
	if err := gw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

// Write passes p on and counts what was written.
func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
