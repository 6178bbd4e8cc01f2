package amx

//go:noescape
func quantRowAVX512(x *float32, q *byte, xs *float32, xsStride, groups, group uintptr, xor uint32, chunk, jump uintptr)

//go:noescape
func bf16RowAVX512(x *float32, q *byte, n, chunk, jump uintptr)

const haveQuantAsm = true
