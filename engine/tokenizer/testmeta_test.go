package tokenizer

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// testdataDir finds ../shared/testdata beside the module root, or $TILELAB_TESTDATA.
func testdataDir(t testing.TB) string {
	if d := os.Getenv("TILELAB_TESTDATA"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "testdata")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory; set TILELAB_TESTDATA")
		}
		dir = parent
	}
}

// metaMap is a Metadata backed by a map, read from a GGUF file's key-value section by readMeta.
type metaMap map[string]any

func (m metaMap) String(k string) (string, bool) { v, ok := m[k].(string); return v, ok }
func (m metaMap) Bool(k string) (bool, bool)     { v, ok := m[k].(bool); return v, ok }
func (m metaMap) Uint(k string) (uint64, bool) {
	switch v := m[k].(type) {
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	}
	return 0, false
}
func (m metaMap) Int(k string) (int64, bool) {
	switch v := m[k].(type) {
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}
func (m metaMap) Strings(k string) ([]string, bool) {
	a, ok := m[k].([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, len(a))
	for i, x := range a {
		if out[i], ok = x.(string); !ok {
			return nil, false
		}
	}
	return out, true
}
func (m metaMap) Float32s(k string) ([]float32, bool) {
	a, ok := m[k].([]any)
	if !ok {
		return nil, false
	}
	out := make([]float32, len(a))
	for i, x := range a {
		if out[i], ok = x.(float32); !ok {
			return nil, false
		}
	}
	return out, true
}
func (m metaMap) Int32s(k string) ([]int32, bool) {
	a, ok := m[k].([]any)
	if !ok {
		return nil, false
	}
	out := make([]int32, len(a))
	for i, x := range a {
		if out[i], ok = x.(int32); !ok {
			return nil, false
		}
	}
	return out, true
}

// readMeta reads the key-value section of a (trusted) GGUF test file.
func readMeta(path string) (metaMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var hdr struct {
		Magic   [4]byte
		Version uint32
		NT, NKV uint64
	}
	if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil {
		return nil, err
	}
	if string(hdr.Magic[:]) != "GGUF" {
		return nil, fmt.Errorf("%s: not GGUF", path)
	}
	str := func() (string, error) {
		var n uint64
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return "", err
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return string(b), err
	}
	var value func(typ uint32) (any, error)
	value = func(typ uint32) (any, error) {
		var err error
		switch typ {
		case 0:
			var v uint8
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 1:
			var v int8
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 2:
			var v uint16
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 3:
			var v int16
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 4:
			var v uint32
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 5:
			var v int32
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 6:
			var v uint32
			err = binary.Read(r, binary.LittleEndian, &v)
			return math.Float32frombits(v), err
		case 7:
			var v uint8
			err = binary.Read(r, binary.LittleEndian, &v)
			return v != 0, err
		case 8:
			return str()
		case 9:
			var at uint32
			var n uint64
			if err := binary.Read(r, binary.LittleEndian, &at); err != nil {
				return nil, err
			}
			if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
				return nil, err
			}
			a := make([]any, n)
			for i := range a {
				if a[i], err = value(at); err != nil {
					return nil, err
				}
			}
			return a, nil
		case 10:
			var v uint64
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 11:
			var v int64
			err = binary.Read(r, binary.LittleEndian, &v)
			return v, err
		case 12:
			var v uint64
			err = binary.Read(r, binary.LittleEndian, &v)
			return math.Float64frombits(v), err
		}
		return nil, fmt.Errorf("unknown GGUF value type %d", typ)
	}
	m := metaMap{}
	for i := uint64(0); i < hdr.NKV; i++ {
		k, err := str()
		if err != nil {
			return nil, err
		}
		var typ uint32
		if err := binary.Read(r, binary.LittleEndian, &typ); err != nil {
			return nil, err
		}
		if m[k], err = value(typ); err != nil {
			return nil, fmt.Errorf("%s: key %s: %v", path, k, err)
		}
	}
	return m, nil
}

// openTokenizer reads a GGUF file's tokenizer.
func openTokenizer(path string) (*Tokenizer, error) {
	m, err := readMeta(path)
	if err != nil {
		return nil, err
	}
	return FromMetadata(m)
}
