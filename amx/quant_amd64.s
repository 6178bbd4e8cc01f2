#include "textflag.h"

// func quantRowAVX512(x *float32, q *byte, xs *float32, xsStride, groups, group uintptr, xor uint32, chunk, jump uintptr)
// Quantizes groups x group floats to int8: per group, s = max|x| / 127 is stored at xs (then xs += xsStride
// bytes), and q = saturate(round-to-nearest-even(x * (1/s))) ^ xor. group is a multiple of 16. The bytes go out
// in runs of chunk bytes (a multiple of 16), each followed by a gap of jump bytes: tile order, or row-major with
// chunk = the row and jump = 0.
TEXT ·quantRowAVX512(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ xs+16(FP), DX
	MOVQ xsStride+24(FP), R8
	MOVQ groups+32(FP), R9
	MOVQ group+40(FP), R10
	SHRQ $4, R10
	MOVL xor+48(FP), AX
	VPBROADCASTB AX, X20
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z21
	MOVL $0x42fe0000, AX // 127.0
	VMOVD AX, X22
	MOVL $0x3f800000, AX // 1.0
	VMOVD AX, X23
	MOVQ chunk+56(FP), BX
	SHRQ $4, BX
	MOVQ jump+64(FP), R12
	MOVQ BX, R13

group:
	VPXORD Z0, Z0, Z0
	MOVQ SI, R11
	MOVQ R10, CX

maxloop:
	VANDPS (R11), Z21, Z1
	VMAXPS Z1, Z0, Z0
	ADDQ $64, R11
	DECQ CX
	JNZ maxloop
	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VDIVSS X22, X0, X2
	VMOVSS X2, (DX)
	ADDQ R8, DX
	VXORPS X3, X3, X3
	VUCOMISS X3, X2
	JEQ scaled
	VDIVSS X2, X23, X3

scaled:
	VBROADCASTSS X3, Z3
	MOVQ R10, CX

qloop:
	VMULPS (SI), Z3, Z4
	VCVTPS2DQ Z4, Z4
	VPMOVSDB Z4, X4
	VPXORD X20, X4, X4
	VMOVDQU X4, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	DECQ R13
	JNZ samechunk
	ADDQ R12, DI
	MOVQ BX, R13

samechunk:
	DECQ CX
	JNZ qloop
	DECQ R9
	JNZ group
	VZEROUPPER
	RET

// func bf16RowAVX512(x *float32, q *byte, n, chunk, jump uintptr)
// Rounds n floats (a multiple of 16) to bf16, to nearest even, writing runs of chunk bytes (a multiple of 32)
// separated by gaps of jump bytes. NaNs keep their top half with the quiet bit set, as the Go path does: rounding
// them would carry into the exponent or the sign (0x7fffffff would become -0).
TEXT ·bf16RowAVX512(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	MOVQ chunk+24(FP), BX
	SHRQ $5, BX
	MOVQ jump+32(FP), R12
	MOVQ BX, R13
	MOVL $1, AX
	VPBROADCASTD AX, Z20
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z21
	MOVL $0x40, AX
	VPBROADCASTD AX, Z22

loop:
	VMOVDQU32 (SI), Z0
	VCMPPS $3, Z0, Z0, K1 // unordered with itself: the NaN lanes
	VPSRLD $16, Z0, Z1
	VPORD Z22, Z1, Z2
	VPANDD Z20, Z1, Z1
	VPADDD Z21, Z1, Z1
	VPADDD Z1, Z0, Z0
	VPSRLD $16, Z0, Z0
	VMOVDQA32 Z2, K1, Z0
	VPMOVDW Z0, Y0
	VMOVDQU Y0, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ R13
	JNZ same
	ADDQ R12, DI
	MOVQ BX, R13

same:
	DECQ CX
	JNZ loop
	VZEROUPPER
	RET
