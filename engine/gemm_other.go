//go:build !amd64

package engine

func kernel6x16(k int, a []float32, lda int, trans bool, b, c []float32, ldc int, accumulate bool) {
	kernel6x16Go(k, a, lda, trans, b, c, ldc, accumulate)
}

// expScaled sets dst[i] = exp(src[i]·scale − sub); dst may alias src.
func expScaled(dst, src []float32, scale, sub float32) {
	for i, x := range src {
		dst[i] = expf(x*scale - sub)
	}
}

func adamwUpdate(w, g, m, v []float32, k *adamConsts) { adamwGo(w, g, m, v, k) }
