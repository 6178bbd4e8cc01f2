//go:build !amd64

package amx

func quantRowAVX512(x *float32, q *byte, xs *float32, xsStride, groups, group uintptr, xor uint32, chunk, jump uintptr) {
}

func bf16RowAVX512(x *float32, q *byte, n, chunk, jump uintptr) {}

const haveQuantAsm = false
