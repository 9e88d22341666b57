//go:build !amd64

package engine

func kernel6x16(k int, a, b, c []float32, ldc int, accumulate bool) {
	kernel6x16Go(k, a, b, c, ldc, accumulate)
}
