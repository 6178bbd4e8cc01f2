package amx

//go:noescape
func quantRowAVX512(x *float32, q *byte, xs *float32, xsStride, groups, group uintptr, xor uint32, chunk, jump, nt uintptr)

//go:noescape
func bf16RowAVX512(x *float32, q *byte, n, chunk, jump, nt uintptr)

// storeFence orders the non-temporal stores before it ahead of every store after it (SFENCE).
func storeFence()

const haveQuantAsm = true
