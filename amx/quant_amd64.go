package amx

//go:noescape
func quantRowAVX512(x *float32, q *byte, xs *float32, xsStride, groups, group uintptr, xor uint32)

//go:noescape
func bf16RowAVX512(x *float32, q *byte, n uintptr)

const haveQuantAsm = true
