//go:build !amd64

package amx

func quantRowAVX512(x *float32, q *byte, xs *float32, xsStride, groups, group uintptr, xor uint32) {}

func bf16RowAVX512(x *float32, q *byte, n uintptr) {}

const haveQuantAsm = false
