#include "textflag.h"

// Constants for expScaledAVX2, one float32 (or int32) each.
DATA expc<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expc<>+4(SB)/4, $0x3f318000  // ln2, high part (exact in a few bits)
DATA expc<>+8(SB)/4, $0xb95e8083  // ln2, low part
DATA expc<>+12(SB)/4, $0x42b0c0a5 // 88.376: above this exp overflows
DATA expc<>+16(SB)/4, $0xc2aeac50 // -87.337: below this exp is subnormal
DATA expc<>+20(SB)/4, $0x3ab60b61 // 1/720
DATA expc<>+24(SB)/4, $0x3c088889 // 1/120
DATA expc<>+28(SB)/4, $0x3d2aaaab // 1/24
DATA expc<>+32(SB)/4, $0x3e2aaaab // 1/6
DATA expc<>+36(SB)/4, $0x3f000000 // 1/2
DATA expc<>+40(SB)/4, $0x3f800000 // 1
DATA expc<>+44(SB)/4, $127        // exponent bias
GLOBL expc<>(SB), RODATA|NOPTR, $48

// func expScaledAVX2(dst, src *float32, n int, scale, sub float32)
//
// dst[i] = exp(src[i]·scale − sub) for n a multiple of 8. x is clamped to
// the normal range, split as x = k·ln2 + r with |r| ≤ ln2/2, e^r comes from
// a degree-6 Taylor polynomial (relative error about 1e-7) and 2^k is built
// in the exponent bits.
TEXT ·expScaledAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y14
	VBROADCASTSS sub+28(FP), Y15
	VBROADCASTSS expc<>+0(SB), Y4
	VBROADCASTSS expc<>+4(SB), Y5
	VBROADCASTSS expc<>+8(SB), Y6
	VBROADCASTSS expc<>+12(SB), Y7
	VBROADCASTSS expc<>+16(SB), Y8
	VBROADCASTSS expc<>+40(SB), Y9
	VPBROADCASTD expc<>+44(SB), Y10
	SHRQ $3, CX
	JEQ  done

loop:
	VMOVUPS      (SI), Y0
	VFMSUB213PS  Y15, Y14, Y0 // x = src·scale − sub
	VMINPS       Y7, Y0, Y0
	VMAXPS       Y8, Y0, Y0
	VMULPS       Y4, Y0, Y1
	VROUNDPS     $0, Y1, Y1   // k = round(x·log2e)
	VFNMADD231PS Y5, Y1, Y0   // r = x − k·ln2hi
	VFNMADD231PS Y6, Y1, Y0   //   − k·ln2lo
	VBROADCASTSS expc<>+20(SB), Y2
	VBROADCASTSS expc<>+24(SB), Y3
	VFMADD213PS  Y3, Y0, Y2
	VBROADCASTSS expc<>+28(SB), Y3
	VFMADD213PS  Y3, Y0, Y2
	VBROADCASTSS expc<>+32(SB), Y3
	VFMADD213PS  Y3, Y0, Y2
	VBROADCASTSS expc<>+36(SB), Y3
	VFMADD213PS  Y3, Y0, Y2
	VFMADD213PS  Y9, Y0, Y2
	VFMADD213PS  Y9, Y0, Y2   // p = e^r
	VCVTPS2DQ    Y1, Y3
	VPADDD       Y10, Y3, Y3
	VPSLLD       $23, Y3, Y3  // 2^k
	VMULPS       Y3, Y2, Y2
	VMOVUPS      Y2, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	DECQ         CX
	JNE          loop

done:
	VZEROUPPER
	RET
