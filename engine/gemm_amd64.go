package engine

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
func xgetbv0() (eax, edx uint32)

// haveAVX2FMA reports AVX2 and FMA support, and that the OS saves the YMM
// registers (OSXSAVE + XCR0 bits 1 and 2).
var haveAVX2FMA = func() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave = 1 << 12, 1 << 27
	if ecx1&fma == 0 || ecx1&osxsave == 0 {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&6 != 6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}()

//go:noescape
func kern6x16avx2(k int, a, b, c *float32, ldc int, accumulate bool)

func kernel6x16(k int, a, b, c []float32, ldc int, accumulate bool) {
	if haveAVX2FMA {
		// Bounds the assembly relies on, checked once per call.
		_ = a[k*mr-1]
		_ = b[k*nr-1]
		_ = c[5*ldc+nr-1]
		kern6x16avx2(k, &a[0], &b[0], &c[0], ldc, accumulate)
		return
	}
	kernel6x16Go(k, a, b, c, ldc, accumulate)
}
