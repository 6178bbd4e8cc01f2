package gguf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type id of a metadata value, as stored in the file.
type ValueType uint32

// The GGUF value types, with the ids of the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var typeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String returns the specification's name of the type ("uint32", "array"), or "type(N)" for an unknown id.
func (t ValueType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Valid reports whether t is one of the GGUF value types.
func (t ValueType) Valid() bool { return t <= TypeFloat64 }

// size is the encoded size of a fixed-size scalar, 0 for strings and arrays.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

func (t ValueType) isInt() bool {
	switch t {
	case TypeUint8, TypeInt8, TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeUint64, TypeInt64:
		return true
	}
	return false
}

func (t ValueType) isSigned() bool {
	return t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
}

// Value is one typed metadata value: a scalar, a string, or an array whose elements share one type (arrays of
// arrays included). Values come from a parsed file or from the constructors (Uint32, Str, Strings, Array, ...);
// the zero Value has no valid type and every accessor refuses it.
type Value struct {
	tp   uint32 // the ValueType plus one, so that the zero Value has no type
	bits uint64 // scalars: integers (signed ones sign-extended), float bits, bool as 0/1
	str  string
	arr  *array
}

// array holds an array's elements in a typed slice: []uint8 ... []float64, []bool, []string, or []Value for
// arrays of arrays.
type array struct {
	elem ValueType
	data any
	n    int
}

// Type is the value's type; for an array, TypeArray (see ElemType).
func (v Value) Type() ValueType { return ValueType(v.tp - 1) }

// ElemType is the element type of an array, and the value's own type otherwise.
func (v Value) ElemType() ValueType {
	if v.arr != nil {
		return v.arr.elem
	}
	return v.Type()
}

// Len is an array's number of elements, or 0 for a scalar.
func (v Value) Len() int {
	if v.arr != nil {
		return v.arr.n
	}
	return 0
}

// Uint returns an integer value that is not negative.
func (v Value) Uint() (uint64, bool) {
	if !v.Type().isInt() || v.Type().isSigned() && int64(v.bits) < 0 {
		return 0, false
	}
	return v.bits, true
}

// Int returns an integer value that fits in an int64.
func (v Value) Int() (int64, bool) {
	if !v.Type().isInt() || v.Type() == TypeUint64 && v.bits > math.MaxInt64 {
		return 0, false
	}
	return int64(v.bits), true
}

// Float returns a float32 or float64 value, or an integer converted to float64.
func (v Value) Float() (float64, bool) {
	switch {
	case v.Type() == TypeFloat32:
		return float64(math.Float32frombits(uint32(v.bits))), true
	case v.Type() == TypeFloat64:
		return math.Float64frombits(v.bits), true
	case v.Type() == TypeUint64:
		return float64(v.bits), true
	case v.Type().isInt():
		return float64(int64(v.bits)), true
	}
	return 0, false
}

// Bool returns a bool value.
func (v Value) Bool() (bool, bool) { return v.bits != 0, v.Type() == TypeBool }

// Str returns a string value. (String formats any value for display.)
func (v Value) Str() (string, bool) { return v.str, v.Type() == TypeString }

// Strings returns an array of strings. The slice is shared with the Value: do not modify it.
func (v Value) Strings() ([]string, bool) {
	if v.arr == nil {
		return nil, false
	}
	s, ok := v.arr.data.([]string)
	return s, ok
}

// Float32s returns an array of float32 values, converting any other numeric array.
func (v Value) Float32s() ([]float32, bool) {
	// The element type decides, not the elements: an empty array of strings is no more numeric than a full one.
	if v.arr == nil || !v.arr.elem.isInt() && v.arr.elem != TypeFloat32 && v.arr.elem != TypeFloat64 {
		return nil, false
	}
	if f, ok := v.arr.data.([]float32); ok {
		return f, true
	}
	out := make([]float32, v.arr.n)
	for i := range out {
		f, ok := v.Index(i).Float()
		if !ok {
			return nil, false
		}
		out[i] = float32(f)
	}
	return out, true
}

// Int32s returns an integer array converted to int32, failing if any element does not fit.
func (v Value) Int32s() ([]int32, bool) {
	if v.arr == nil || !v.arr.elem.isInt() {
		return nil, false
	}
	if s, ok := v.arr.data.([]int32); ok {
		return s, true
	}
	out := make([]int32, v.arr.n)
	for i := range out {
		n, ok := v.Index(i).Int()
		if !ok || n < math.MinInt32 || n > math.MaxInt32 {
			return nil, false
		}
		out[i] = int32(n)
	}
	return out, true
}

// Int64s returns an integer array converted to int64, failing if any element does not fit.
func (v Value) Int64s() ([]int64, bool) {
	if v.arr == nil || !v.arr.elem.isInt() {
		return nil, false
	}
	out := make([]int64, v.arr.n)
	for i := range out {
		n, ok := v.Index(i).Int()
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// Index returns element i of an array as a Value; it returns the zero Value when v is not an array or i is out
// of range.
func (v Value) Index(i int) Value {
	if v.arr == nil || i < 0 || i >= v.arr.n {
		return Value{}
	}
	switch d := v.arr.data.(type) {
	case []uint8:
		return Uint8(d[i])
	case []int8:
		return Int8(d[i])
	case []uint16:
		return Uint16(d[i])
	case []int16:
		return Int16(d[i])
	case []uint32:
		return Uint32(d[i])
	case []int32:
		return Int32(d[i])
	case []float32:
		return Float32(d[i])
	case []bool:
		return Bool(d[i])
	case []string:
		return Str(d[i])
	case []uint64:
		return Uint64(d[i])
	case []int64:
		return Int64(d[i])
	case []float64:
		return Float64(d[i])
	case []Value:
		return d[i]
	}
	return Value{}
}

// Interface returns the value as a plain Go value: uint8 ... float64, bool, string, a typed slice for an array
// of scalars or strings, or []any for an array of arrays.
func (v Value) Interface() any {
	if v.arr != nil {
		if vs, ok := v.arr.data.([]Value); ok {
			out := make([]any, len(vs))
			for i, e := range vs {
				out[i] = e.Interface()
			}
			return out
		}
		return v.arr.data
	}
	switch v.Type() {
	case TypeUint8:
		return uint8(v.bits)
	case TypeInt8:
		return int8(v.bits)
	case TypeUint16:
		return uint16(v.bits)
	case TypeInt16:
		return int16(v.bits)
	case TypeUint32:
		return uint32(v.bits)
	case TypeInt32:
		return int32(v.bits)
	case TypeFloat32:
		return math.Float32frombits(uint32(v.bits))
	case TypeBool:
		return v.bits != 0
	case TypeString:
		return v.str
	case TypeUint64:
		return v.bits
	case TypeInt64:
		return int64(v.bits)
	case TypeFloat64:
		return math.Float64frombits(v.bits)
	}
	return nil
}

// String formats the value for people: strings quoted, long arrays abbreviated to their first elements and
// their length.
func (v Value) String() string {
	if v.arr != nil {
		const show = 8
		var b strings.Builder
		b.WriteByte('[')
		for i := 0; i < min(v.arr.n, show); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v.Index(i).String())
		}
		if v.arr.n > show {
			fmt.Fprintf(&b, ", ... (%d %s)", v.arr.n, v.arr.elem)
		}
		b.WriteByte(']')
		return b.String()
	}
	switch v.Type() {
	case TypeString:
		return strconv.Quote(v.str)
	case TypeFloat32:
		return strconv.FormatFloat(float64(math.Float32frombits(uint32(v.bits))), 'g', -1, 32)
	}
	return fmt.Sprint(v.Interface())
}

// Constructors for scalar values.

// Uint8 makes a uint8 value.
func Uint8(x uint8) Value { return Value{tp: uint32(TypeUint8) + 1, bits: uint64(x)} }

// Int8 makes an int8 value.
func Int8(x int8) Value { return Value{tp: uint32(TypeInt8) + 1, bits: uint64(int64(x))} }

// Uint16 makes a uint16 value.
func Uint16(x uint16) Value { return Value{tp: uint32(TypeUint16) + 1, bits: uint64(x)} }

// Int16 makes an int16 value.
func Int16(x int16) Value { return Value{tp: uint32(TypeInt16) + 1, bits: uint64(int64(x))} }

// Uint32 makes a uint32 value.
func Uint32(x uint32) Value { return Value{tp: uint32(TypeUint32) + 1, bits: uint64(x)} }

// Int32 makes an int32 value.
func Int32(x int32) Value { return Value{tp: uint32(TypeInt32) + 1, bits: uint64(int64(x))} }

// Uint64 makes a uint64 value.
func Uint64(x uint64) Value { return Value{tp: uint32(TypeUint64) + 1, bits: x} }

// Int64 makes an int64 value.
func Int64(x int64) Value { return Value{tp: uint32(TypeInt64) + 1, bits: uint64(x)} }

// Float32 makes a float32 value.
func Float32(x float32) Value {
	return Value{tp: uint32(TypeFloat32) + 1, bits: uint64(math.Float32bits(x))}
}

// Float64 makes a float64 value.
func Float64(x float64) Value { return Value{tp: uint32(TypeFloat64) + 1, bits: math.Float64bits(x)} }

// Bool makes a bool value.
func Bool(x bool) Value {
	if x {
		return Value{tp: uint32(TypeBool) + 1, bits: 1}
	}
	return Value{tp: uint32(TypeBool) + 1}
}

// Str makes a string value.
func Str(s string) Value { return Value{tp: uint32(TypeString) + 1, str: s} }

// Constructors for arrays. The slice is kept, not copied: do not modify it afterwards.

// Strings makes an array of strings.
func Strings(s []string) Value { return mkArray(TypeString, s, len(s)) }

// Float32s makes an array of float32.
func Float32s(s []float32) Value { return mkArray(TypeFloat32, s, len(s)) }

// Int32s makes an array of int32.
func Int32s(s []int32) Value { return mkArray(TypeInt32, s, len(s)) }

// Uint32s makes an array of uint32.
func Uint32s(s []uint32) Value { return mkArray(TypeUint32, s, len(s)) }

// Uint8s makes an array of uint8.
func Uint8s(s []uint8) Value { return mkArray(TypeUint8, s, len(s)) }

// Int64s makes an array of int64.
func Int64s(s []int64) Value { return mkArray(TypeInt64, s, len(s)) }

// Bools makes an array of bool.
func Bools(s []bool) Value { return mkArray(TypeBool, s, len(s)) }

func mkArray(elem ValueType, data any, n int) Value {
	return Value{tp: uint32(TypeArray) + 1, arr: &array{elem: elem, data: data, n: n}}
}

// Array makes an array of elements of type elem from values of that type, arrays of arrays included.
func Array(elem ValueType, vals ...Value) (Value, error) {
	if !elem.Valid() {
		return Value{}, fmt.Errorf("gguf: unknown array element type %v", elem)
	}
	for i, e := range vals {
		if e.Type() != elem || !e.Type().Valid() {
			return Value{}, fmt.Errorf("gguf: array of %v: element %d is %v", elem, i, e.Type())
		}
	}
	if elem == TypeArray {
		return mkArray(elem, append([]Value(nil), vals...), len(vals)), nil
	}
	if elem == TypeString {
		s := make([]string, len(vals))
		for i, e := range vals {
			s[i] = e.str
		}
		return Strings(s), nil
	}
	a := newScalarArray(elem, len(vals))
	for i, e := range vals {
		a.set(i, e.bits)
	}
	return Value{tp: uint32(TypeArray) + 1, arr: a}, nil
}

// newScalarArray allocates a typed slice of n fixed-size elements.
func newScalarArray(elem ValueType, n int) *array {
	var data any
	switch elem {
	case TypeUint8:
		data = make([]uint8, n)
	case TypeInt8:
		data = make([]int8, n)
	case TypeUint16:
		data = make([]uint16, n)
	case TypeInt16:
		data = make([]int16, n)
	case TypeUint32:
		data = make([]uint32, n)
	case TypeInt32:
		data = make([]int32, n)
	case TypeFloat32:
		data = make([]float32, n)
	case TypeBool:
		data = make([]bool, n)
	case TypeUint64:
		data = make([]uint64, n)
	case TypeInt64:
		data = make([]int64, n)
	case TypeFloat64:
		data = make([]float64, n)
	}
	return &array{elem: elem, data: data, n: n}
}

// set stores element i from its raw bits (as Value.bits holds them).
func (a *array) set(i int, bits uint64) {
	switch d := a.data.(type) {
	case []uint8:
		d[i] = uint8(bits)
	case []int8:
		d[i] = int8(bits)
	case []uint16:
		d[i] = uint16(bits)
	case []int16:
		d[i] = int16(bits)
	case []uint32:
		d[i] = uint32(bits)
	case []int32:
		d[i] = int32(bits)
	case []float32:
		d[i] = math.Float32frombits(uint32(bits))
	case []bool:
		d[i] = bits != 0
	case []uint64:
		d[i] = bits
	case []int64:
		d[i] = int64(bits)
	case []float64:
		d[i] = math.Float64frombits(bits)
	}
}

// rawBits returns element i's raw bits, the inverse of set.
func (a *array) rawBits(i int) uint64 {
	switch d := a.data.(type) {
	case []uint8:
		return uint64(d[i])
	case []int8:
		return uint64(int64(d[i]))
	case []uint16:
		return uint64(d[i])
	case []int16:
		return uint64(int64(d[i]))
	case []uint32:
		return uint64(d[i])
	case []int32:
		return uint64(int64(d[i]))
	case []float32:
		return uint64(math.Float32bits(d[i]))
	case []bool:
		if d[i] {
			return 1
		}
		return 0
	case []uint64:
		return d[i]
	case []int64:
		return uint64(d[i])
	case []float64:
		return math.Float64bits(d[i])
	}
	return 0
}

// Equal reports whether two values have the same type and contents (arrays element by element; floats by bits,
// so a NaN equals itself).
func (v Value) Equal(o Value) bool {
	if v.tp != o.tp {
		return false
	}
	if v.arr == nil || o.arr == nil {
		return v.arr == o.arr && v.bits == o.bits && v.str == o.str
	}
	a, b := v.arr, o.arr
	if a.elem != b.elem || a.n != b.n {
		return false
	}
	for i := 0; i < a.n; i++ {
		switch a.elem {
		case TypeString:
			if a.data.([]string)[i] != b.data.([]string)[i] {
				return false
			}
		case TypeArray:
			if !a.data.([]Value)[i].Equal(b.data.([]Value)[i]) {
				return false
			}
		default:
			if a.rawBits(i) != b.rawBits(i) {
				return false
			}
		}
	}
	return true
}
