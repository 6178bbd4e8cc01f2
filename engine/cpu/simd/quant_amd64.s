#include "textflag.h"

// func quantQ8AVX512(dst *byte, x *float32, nb int)
// Quantizes nb blocks of 32 floats to block_q8_0, bit for bit as quantizeQ8Generic (ggml's reference): amax and
// d = amax/127 and id = 1/d in float32, the fp16 scale rounded to nearest even, and round(x·id) half away from
// zero, done as trunc(v + copysign(0.49999997, v)), exact for every float32 v.
TEXT ·quantQ8AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ nb+16(FP), CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z20 // |x| mask
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z21 // sign mask
	MOVL $0x3effffff, AX // 0.49999997, the float just below 0.5
	VPBROADCASTD AX, Z22
	MOVL $0x42fe0000, AX // 127.0
	VMOVD AX, X23
	MOVL $0x3f800000, AX // 1.0
	VMOVD AX, X24
	VXORPS X25, X25, X25
	TESTQ CX, CX
	JZ done

loop:
	VMOVUPS 0(SI), Z0
	VMOVUPS 64(SI), Z1
	VANDPS Z20, Z0, Z2
	VANDPS Z20, Z1, Z3
	VMAXPS Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VMAXPS Y3, Y2, Y2
	VEXTRACTF128 $1, Y2, X3
	VMAXPS X3, X2, X2
	VPERMILPD $1, X2, X3
	VMAXPS X3, X2, X2
	VMOVSHDUP X2, X3
	VMAXSS X3, X2, X2 // amax
	VDIVSS X23, X2, X4 // d = amax / 127
	VCMPSS $4, X25, X4, K1 // d != 0
	VDIVSS.Z X4, X24, K1, X5 // id = 1/d, or 0
	VCVTPS2PH $0, X4, X6
	VMOVD X6, AX
	MOVW AX, 0(DI)
	VBROADCASTSS X5, Z5
	VMULPS Z5, Z0, Z0
	VMULPS Z5, Z1, Z1
	VANDPS Z21, Z0, Z2
	VANDPS Z21, Z1, Z3
	VORPS Z22, Z2, Z2
	VORPS Z22, Z3, Z3
	VADDPS Z2, Z0, Z0
	VADDPS Z3, Z1, Z1
	VCVTTPS2DQ Z0, Z0
	VCVTTPS2DQ Z1, Z1
	VPMOVSDB Z0, 2(DI)
	VPMOVSDB Z1, 18(DI)
	ADDQ $128, SI
	ADDQ $34, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET
