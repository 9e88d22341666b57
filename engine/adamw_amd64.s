#include "textflag.h"

// func adamwAVX2(wp, gp, mp, vp *float32, n int, k *adamConsts)
// Eight weights per iteration; n is a multiple of 8. k holds scale, b1,
// 1-b1, b2, 1-b2, dec, lrc, isb2, eps; the update is adamwGo's:
//   gi = g*scale, m = b1*m + (1-b1)*gi, v = b2*v + (1-b2)*gi*gi,
//   w = w*dec - lrc*m/(sqrt(v)*isb2 + eps), g = 0.
TEXT ·adamwAVX2(SB), NOSPLIT, $0-48
	MOVQ wp+0(FP), DI
	MOVQ gp+8(FP), SI
	MOVQ mp+16(FP), R8
	MOVQ vp+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ k+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	VBROADCASTSS 28(AX), Y15
	VBROADCASTSS 32(AX), Y7
	VXORPS Y6, Y6, Y6
	SHRQ $3, CX
	JEQ adamw_done

adamw_loop:
	VMULPS (SI), Y8, Y0
	VMOVUPS Y6, (SI)
	VMULPS (R8), Y9, Y1
	VFMADD231PS Y0, Y10, Y1
	VMOVUPS Y1, (R8)
	VMULPS Y0, Y0, Y2
	VMULPS (R9), Y11, Y3
	VFMADD231PS Y2, Y12, Y3
	VMOVUPS Y3, (R9)
	VSQRTPS Y3, Y4
	VFMADD213PS Y7, Y15, Y4
	VMULPS Y14, Y1, Y5
	VDIVPS Y4, Y5, Y5
	VMULPS (DI), Y13, Y2
	VSUBPS Y5, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ CX
	JNE adamw_loop

adamw_done:
	VZEROUPPER
	RET
