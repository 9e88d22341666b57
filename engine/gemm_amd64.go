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
func kern6x16T(k int, a *float32, lda int, b, c *float32, ldc int, accumulate bool)

//go:noescape
func kern6x16N(k int, a *float32, lda int, b, c *float32, ldc int, accumulate bool)

// kernel6x16 computes c[6×16] (+)= A·b; A is a[i*lda+p], or a[p*lda+i]
// when trans, for i < 6 and p < k.
func kernel6x16(k int, a []float32, lda int, trans bool, b, c []float32, ldc int, accumulate bool) {
	if !haveAVX2FMA || k == 0 {
		kernel6x16Go(k, a, lda, trans, b, c, ldc, accumulate)
		return
	}
	// Bounds the assembly relies on, checked once per call.
	_ = b[k*nr-1]
	_ = c[5*ldc+nr-1]
	if trans {
		_ = a[(k-1)*lda+mr-1]
		kern6x16T(k, &a[0], lda, &b[0], &c[0], ldc, accumulate)
		return
	}
	_ = a[5*lda+k-1]
	kern6x16N(k, &a[0], lda, &b[0], &c[0], ldc, accumulate)
}

//go:noescape
func expScaledAVX2(dst, src *float32, n int, scale, sub float32)

// expScaled sets dst[i] = exp(src[i]·scale − sub); dst may alias src.
func expScaled(dst, src []float32, scale, sub float32) {
	n := len(src)
	if n == 0 {
		return
	}
	_ = dst[n-1]
	head := 0
	if haveAVX2FMA && n >= 8 {
		head = n &^ 7
		expScaledAVX2(&dst[0], &src[0], head, scale, sub)
	}
	for i := head; i < n; i++ {
		dst[i] = expf(src[i]*scale - sub)
	}
}

//go:noescape
func adamwAVX2(wp, gp, mp, vp *float32, n int, k *adamConsts)

// adamwUpdate applies adamwGo's update, eight weights at a time with AVX2.
func adamwUpdate(w, g, m, v []float32, k *adamConsts) {
	n := len(w)
	if n == 0 {
		return
	}
	_, _, _ = g[n-1], m[n-1], v[n-1]
	head := 0
	if haveAVX2FMA && n >= 8 {
		head = n &^ 7
		adamwAVX2(&w[0], &g[0], &m[0], &v[0], head, k)
	}
	adamwGo(w[head:], g[head:n], m[head:n], v[head:n], k)
}
