#include "textflag.h"

// Vectorized exp for the softmax and SiLU kernels: Cephes' expf (range reduction by ln 2 in two parts, a degree-5
// polynomial), with VSCALEFPS applying the power of two, so overflow and underflow come out as +Inf and 0. Inputs
// are clamped to [-104, 88.72]: -104 underflows to exactly 0, so masked (-Inf) logits give 0.

// EXPCONSTS loads the constants into Z16..Z27: log2(e), -ln2 in two parts (-0.693359375, +2.12194440e-4),
// the polynomial P5..P0, 1, and the clamp bounds -104 and 88.72284.
#define EXPCONSTS \
	MOVL $0x3fb8aa3b, AX; VPBROADCASTD AX, Z16; \
	MOVL $0xbf318000, AX; VPBROADCASTD AX, Z17; \
	MOVL $0x395e8083, AX; VPBROADCASTD AX, Z18; \
	MOVL $0x39506967, AX; VPBROADCASTD AX, Z19; \
	MOVL $0x3ab743ce, AX; VPBROADCASTD AX, Z20; \
	MOVL $0x3c088908, AX; VPBROADCASTD AX, Z21; \
	MOVL $0x3d2aa9c1, AX; VPBROADCASTD AX, Z22; \
	MOVL $0x3e2aaaaa, AX; VPBROADCASTD AX, Z23; \
	MOVL $0x3f000000, AX; VPBROADCASTD AX, Z24; \
	MOVL $0x3f800000, AX; VPBROADCASTD AX, Z25; \
	MOVL $0xc2d00000, AX; VPBROADCASTD AX, Z26; \
	MOVL $0x42b17218, AX; VPBROADCASTD AX, Z27

// EXP replaces X with exp(X), using N, P, Y as scratch.
#define EXP(X, N, P, Y) \
	VMAXPS Z26, X, X; \
	VMINPS Z27, X, X; \
	VMULPS Z16, X, N; \
	VRNDSCALEPS $0, N, N; \
	VFMADD231PS Z17, N, X; \
	VFMADD231PS Z18, N, X; \
	VMOVAPS Z19, P; \
	VFMADD213PS Z20, X, P; \
	VFMADD213PS Z21, X, P; \
	VFMADD213PS Z22, X, P; \
	VFMADD213PS Z23, X, P; \
	VFMADD213PS Z24, X, P; \
	VMULPS X, X, Y; \
	VFMADD213PS X, Y, P; \
	VADDPS Z25, P, P; \
	VSCALEFPS N, P, X

// TAILMASK sets K1 to the low CX&15 lanes (CX is consumed).
#define TAILMASK \
	ANDQ $15, CX; MOVL $1, R9; SHLL CX, R9; DECL R9; KMOVW R9, K1

// func maxAVX512(x *float32, n int) float32
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0xff800000, AX
	VPBROADCASTD AX, Z1 // -Inf
	VMOVAPS Z1, Z0
	MOVQ CX, DX
	SHRQ $4, DX
	JZ maxtail
maxloop:
	VMAXPS (SI), Z0, Z0
	ADDQ $64, SI
	DECQ DX
	JNZ maxloop
maxtail:
	TAILMASK
	VMOVUPS (SI), K1, Z1
	VMAXPS Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPD $1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSHDUP X0, X1
	VMAXSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func expSumAVX512(dst, x *float32, n int, shift float32) float32
// dst[i] = exp(x[i] - shift); returns the sum of dst.
TEXT ·expSumAVX512(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS shift+24(FP), Z8
	EXPCONSTS
	VXORPS Z9, Z9, Z9
	MOVQ CX, DX
	SHRQ $4, DX
	JZ exptail
exploop:
	VMOVUPS (SI), Z0
	VSUBPS Z8, Z0, Z0
	EXP(Z0, Z1, Z2, Z3)
	VMOVUPS Z0, (DI)
	VADDPS Z0, Z9, Z9
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ DX
	JNZ exploop
exptail:
	TAILMASK
	VMOVUPS.Z (SI), K1, Z0
	VSUBPS Z8, Z0, Z0
	EXP(Z0, Z1, Z2, Z3)
	VMOVUPS Z0, K1, (DI)
	VADDPS Z0, Z9, K1, Z9
	VEXTRACTF64X4 $1, Z9, Y1
	VADDPS Y1, Y9, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPD $1, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func scaleAVX512(x *float32, n int, s float32)
TEXT ·scaleAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Z8
	MOVQ CX, DX
	SHRQ $4, DX
	JZ scaletail
scaleloop:
	VMULPS (DI), Z8, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	DECQ DX
	JNZ scaleloop
scaletail:
	TAILMASK
	VMOVUPS.Z (DI), K1, Z0
	VMULPS Z0, Z8, Z0
	VMOVUPS Z0, K1, (DI)
	VZEROUPPER
	RET

// func swigluAVX512(dst, gate, u *float32, n int)
// dst[i] = gate[i] / (1 + exp(-gate[i])) * u[i]; u nil means 1 (plain SiLU).
TEXT ·swigluAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ u+16(FP), BX
	MOVQ n+24(FP), CX
	EXPCONSTS
	VXORPS Z9, Z9, Z9
	MOVQ CX, DX
	SHRQ $4, DX
	JZ glutail
gluloop:
	VMOVUPS (SI), Z4
	VSUBPS Z4, Z9, Z0
	EXP(Z0, Z1, Z2, Z3)
	VADDPS Z25, Z0, Z0
	VDIVPS Z0, Z4, Z4
	TESTQ BX, BX
	JZ glunou
	VMULPS (BX), Z4, Z4
	ADDQ $64, BX
glunou:
	VMOVUPS Z4, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ DX
	JNZ gluloop
glutail:
	TAILMASK
	VMOVUPS.Z (SI), K1, Z4
	VSUBPS Z4, Z9, Z0
	EXP(Z0, Z1, Z2, Z3)
	VADDPS Z25, Z0, Z0
	VDIVPS Z0, Z4, Z4
	TESTQ BX, BX
	JZ glutailnou
	VMOVUPS.Z (BX), K1, Z5
	VMULPS Z5, Z4, Z4
glutailnou:
	VMOVUPS Z4, K1, (DI)
	VZEROUPPER
	RET
