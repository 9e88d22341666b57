package engine

import (
	"runtime"
	"sync"
)

// The matrix multiply behind every linear layer and attention block: a
// packed, cache-blocked SGEMM in the BLIS style. Both operands are copied
// into panels that the 6×16 micro-kernel streams through (so transposed
// operands cost nothing extra), and the output tiles are shared out over
// all cores. A product with few rows and an unpacked B (a linear layer
// over a short batch) is computed as its transpose instead (gemmThin). On
// amd64 with AVX2+FMA the micro-kernel is assembly
// (gemm_amd64.s); elsewhere it is the Go loop in kernel6x16Go.

const (
	mr = 6   // micro-kernel rows
	nr = 16  // micro-kernel columns (two AVX2 vectors)
	kc = 256 // depth of one packed panel: an A micro-panel (6 KB) and a B micro-panel (16 KB) stay in L1
	mc = 96  // rows of A per packed block (96 KB, L2)
)

// gemmArgs describes dst[m×n] (+)= op(A)·op(B) with op(A) m×k and op(B) k×n.
// transA means A is stored k×m (lda ≥ m); transB means B is stored n×k.
type gemmArgs struct {
	m, n, k    int
	a          []float32
	lda        int
	transA     bool
	b          []float32
	ldb        int
	transB     bool
	c          []float32
	ldc        int
	accumulate bool
	threads    int
}

var packPool = sync.Pool{New: func() any { return new([]float32) }}

func getBuf(n int) *[]float32 {
	p := packPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// MatMul computes dst = a·b for row-major a (m×k) and b (k×n) on all cores.
func MatMul(dst, a, b []float32, m, k, n int) {
	gemm(gemmArgs{m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: dst, ldc: n})
}

// matMulNT computes dst (+)= a·bᵀ with a m×k and b n×k: a linear layer
// y = x·Wᵀ with W stored [out, in] as in PyTorch.
func matMulNT(dst, a, b []float32, m, k, n int, accumulate bool) {
	gemm(gemmArgs{m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, transB: true, c: dst, ldc: n, accumulate: accumulate})
}

// matMulNN computes dst (+)= a·b with a m×k and b k×n: dx = dy·W.
func matMulNN(dst, a, b []float32, m, k, n int, accumulate bool) {
	gemm(gemmArgs{m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: dst, ldc: n, accumulate: accumulate})
}

// matMulTN computes dst (+)= aᵀ·b with a k×m and b k×n: dW = dyᵀ·x.
func matMulTN(dst, a, b []float32, m, k, n int, accumulate bool) {
	gemm(gemmArgs{m: m, n: n, k: k, a: a, lda: m, transA: true, b: b, ldb: n, c: dst, ldc: n, accumulate: accumulate})
}

// packedB is a weight matrix W [out×in] packed once as op(B) = Wᵀ, so that
// the sampler's many small products (decoding steps) skip the packing.
type packedB struct {
	k, n   int
	panels []float32 // for each depth block pc: nPanels·nr·kb values
}

func (p *packedB) nPanels() int { return (p.n + nr - 1) / nr }

// packWeight packs W [out×in] for y = x·Wᵀ.
func packWeight(w []float32, out, in int) *packedB {
	return packMatrix(w, in, true, out, in)
}

// packMatrix packs op(B) (k×n) once for reuse across products: B stored
// k×n with row stride ldb, or n×k when trans (so op(B) = Bᵀ).
func packMatrix(b []float32, ldb int, trans bool, n, k int) *packedB {
	g := gemmArgs{n: n, k: k, b: b, ldb: ldb, transB: trans}
	out, in := n, k
	nPanels := (out + nr - 1) / nr
	pb := &packedB{k: in, n: out, panels: make([]float32, nPanels*nr*in)}
	for pc := 0; pc < in; pc += kc {
		kb := min(kc, in-pc)
		packB(pb.panels[pc*nPanels*nr:pc*nPanels*nr+nPanels*nr*kb], g, pc, kb, 1)
	}
	return pb
}

// matMulPacked computes dst (+)= a·Wᵀ for a m×k with W pre-packed.
func matMulPacked(dst, a []float32, m int, w *packedB, accumulate bool) {
	gemmPre(gemmArgs{m: m, n: w.n, k: w.k, a: a, lda: w.k, c: dst, ldc: w.n, accumulate: accumulate}, w)
}

func gemm(g gemmArgs) { gemmPre(g, nil) }

func gemmPre(g gemmArgs, pre *packedB) {
	if g.m == 0 || g.n == 0 {
		return
	}
	if g.k == 0 {
		if !g.accumulate {
			for i := 0; i < g.m; i++ {
				clear(g.c[i*g.ldc : i*g.ldc+g.n])
			}
		}
		return
	}
	threads := g.threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	// Small products are not worth a goroutine hand-off.
	if threads > 1 && g.m*g.n*g.k < 32*1024 {
		threads = 1
	}
	if pre == nil && g.m >= thinMinRows && g.m <= thinRows {
		gemmThin(g, threads)
		return
	}
	nPanels := (g.n + nr - 1) / nr
	for pc := 0; pc < g.k; pc += kc {
		kb := min(kc, g.k-pc)
		var bp []float32
		stride := nr * kb // floats between consecutive panels
		var pooled *[]float32
		if pre != nil {
			full := min(kc, pre.k-pc)
			off := pc * pre.nPanels() * nr
			bp, stride = pre.panels[off:off+pre.nPanels()*nr*full], nr*full
		} else {
			pooled = getBuf(nPanels * nr * kb)
			bp = *pooled
			packB(bp, g, pc, kb, threads)
		}
		accumulate := g.accumulate || pc > 0
		// Tasks are (row block, column-panel range) pairs; with few rows the
		// columns are split so that every core has work (decoding).
		mBlocks := (g.m + mc - 1) / mc
		nSplit := 1
		if mBlocks < 2*threads {
			nSplit = min(nPanels, (2*threads+mBlocks-1)/mBlocks)
		}
		run := func(t int) {
			ib, js := t/nSplit, t%nSplit
			i0 := ib * mc
			mb := min(mc, g.m-i0)
			p0, p1 := js*nPanels/nSplit, (js+1)*nPanels/nSplit
			macroKernel(bp, stride, g, i0, mb, p0, p1, pc, kb, accumulate)
		}
		parallelTasks(mBlocks*nSplit, threads, run)
		if pooled != nil {
			packPool.Put(pooled)
		}
	}
}

// thinRows is the most rows of op(A) for which a product without a
// pre-packed B is computed as its transpose (gemmThin). Packing all of B
// for a few rows cost more than the product: a LoRA training step over
// one 32-token sequence of SmolLM2-135M spent 65% of its time packing
// weights. Single-core GFLOP/s per CPU second (zz scratch, load 7–9):
// 32×576×1536 x·Wᵀ 19 → 71, dy·W 34 → 49; at 128 rows 44 → 79 and
// 55 → 61; at 256 rows level, so the cut is 128.
const thinRows = 128

// thinMinRows is the fewest rows that take the thin path: there op(A)ᵀ's
// rows fill the kernel's 16 columns (m/16 of its FMAs do work, against
// m/6 packed), so a decoding step's attention (three query heads of a
// group against an unpacked K) keeps the packed path: with it on the
// thin path, three alternated pairs of `bench engine --model` (SmolLM2,
// load 6–9) decoded at batch 1 at 0.43–0.91× the old speed.
const thinMinRows = 8

// gemmThin computes C (+)= op(A)·op(B) for few rows of op(A) and a large
// op(B) (a weight matrix) as its transpose Cᵀ = op(B)ᵀ·op(A)ᵀ: the small
// op(A)ᵀ is packed whole, once, and op(B)ᵀ is the micro-kernel's A — read
// in place when B is stored n×k (x·Wᵀ: six contiguous row streams), or
// copied block by block inside each task when B is stored k×n (dy·W).
// Each task owns a block of op(B)ᵀ's rows, keeps its Cᵀ tile across the
// whole depth and stores it transposed at the end.
func gemmThin(g gemmArgs, threads int) {
	m2, n2 := g.n, g.m // Cᵀ is m2×n2
	nP := (n2 + nr - 1) / nr
	ldt := nP * nr
	// op(A)ᵀ is k×m: stored transposed (n2×k) when A is plain m×k.
	bt := gemmArgs{n: n2, k: g.k, b: g.a, ldb: g.lda, transB: !g.transA}
	pooled := getBuf(nP * nr * g.k)
	bp := *pooled
	defer packPool.Put(pooled)
	for pc := 0; pc < g.k; pc += kc {
		kb := min(kc, g.k-pc)
		packB(bp[pc*ldt:pc*ldt+ldt*kb], bt, pc, kb, 1)
	}
	rows := mc
	if tasks := (m2 + rows - 1) / rows; tasks < 4*threads {
		rows = max(mr, ((m2+4*threads-1)/(4*threads)+mr-1)/mr*mr)
	}
	parallelTasks((m2+rows-1)/rows, threads, func(t int) {
		i0 := t * rows
		mb := min(rows, m2-i0)
		ctBuf := getBuf((mb + mr - 1) / mr * mr * ldt)
		defer packPool.Put(ctBuf)
		ct := *ctBuf
		var edge [mr * kc]float32
		var blk *[]float32
		if !g.transB {
			blk = getBuf((mb + mr - 1) / mr * mr * min(kc, g.k))
			defer packPool.Put(blk)
		}
		for pc := 0; pc < g.k; pc += kc {
			kb := min(kc, g.k-pc)
			bpc := bp[pc*ldt : pc*ldt+ldt*kb]
			if !g.transB {
				// B stored k×n: a column of B (a row of the kernel's A) is
				// ldb apart per depth step, and reading it in place maps a
				// panel's depth steps onto a few L1 sets (ldb a multiple of
				// many cache lines), so the task's block is copied into
				// contiguous micro-panels first; it stays in L2.
				packATrans(*blk, gemmArgs{a: g.b, lda: g.ldb}, i0, mb, pc, kb)
			}
			for ir := 0; ir < mb; ir += mr {
				var a []float32
				lda, trans := g.ldb, false
				switch r := min(mr, mb-ir); {
				case !g.transB:
					// Bᵀ's rows are B's columns: from the task's packed block.
					a, lda, trans = (*blk)[ir*kb:(ir+mr)*kb], mr, true
				case r == mr:
					a = g.b[(i0+ir)*g.ldb+pc:]
				default:
					for p := 0; p < kb; p++ {
						for i := 0; i < mr; i++ {
							v := float32(0)
							if i < r {
								v = g.b[(i0+ir+i)*g.ldb+pc+p]
							}
							edge[p*mr+i] = v
						}
					}
					a, lda, trans = edge[:kb*mr], mr, true
				}
				for jp := 0; jp < nP; jp++ {
					kernel6x16(kb, a, lda, trans, bpc[jp*nr*kb:(jp+1)*nr*kb], ct[ir*ldt+jp*nr:], ldt, pc > 0)
				}
			}
		}
		for j := 0; j < n2; j++ {
			c := g.c[j*g.ldc+i0 : j*g.ldc+i0+mb]
			if g.accumulate {
				for i := range c {
					c[i] += ct[i*ldt+j]
				}
			} else {
				for i := range c {
					c[i] = ct[i*ldt+j]
				}
			}
		}
	})
}

// parallelTasks runs run(0..n-1) on up to threads goroutines;
// threads <= 0 means all cores.
func parallelTasks(n, threads int, run func(int)) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if threads <= 1 || n <= 1 {
		for t := 0; t < n; t++ {
			run(t)
		}
		return
	}
	threads = min(threads, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	worker := func() {
		for {
			mu.Lock()
			t := next
			next++
			mu.Unlock()
			if t >= n {
				return
			}
			run(t)
		}
	}
	wg.Add(threads - 1)
	for w := 1; w < threads; w++ {
		go func() { defer wg.Done(); worker() }()
	}
	worker()
	wg.Wait()
}

// packB copies depth [pc, pc+kb) × all columns of op(B) into micro-panels
// of nr columns, each laid out depth-major, zero-padded.
func packB(dst []float32, g gemmArgs, pc, kb, threads int) {
	nPanels := (g.n + nr - 1) / nr
	pack := func(jp int) {
		j0 := jp * nr
		cols := min(nr, g.n-j0)
		d := dst[jp*nr*kb : (jp+1)*nr*kb]
		if !g.transB && cols == nr {
			for p := 0; p < kb; p++ {
				src := g.b[(pc+p)*g.ldb+j0:]
				// Through a value: a direct array-to-array copy may
				// overlap, so the compiler calls memmove for it.
				v := *(*[nr]float32)(src)
				*(*[nr]float32)(d[p*nr:]) = v
			}
			return
		}
		if !g.transB {
			for p := 0; p < kb; p++ {
				row := d[p*nr : p*nr+nr]
				src := g.b[(pc+p)*g.ldb+j0 : (pc+p)*g.ldb+j0+cols]
				copy(row, src)
				clear(row[cols:])
			}
			return
		}
		for j := 0; j < nr; j++ {
			if j >= cols {
				for p := 0; p < kb; p++ {
					d[p*nr+j] = 0
				}
				continue
			}
			src := g.b[(j0+j)*g.ldb+pc : (j0+j)*g.ldb+pc+kb]
			for p, x := range src {
				d[p*nr+j] = x
			}
		}
	}
	if threads > 1 && nPanels*kb >= 64*1024/nr {
		parallelTasks(nPanels, threads, pack)
		return
	}
	for jp := 0; jp < nPanels; jp++ {
		pack(jp)
	}
}

// macroKernel multiplies rows [i0, i0+mb) of op(A), depth [pc, pc+kb),
// by B panels [p0, p1). A is read in place; only a final partial group of
// rows is copied into a zero-padded depth-major buffer.
func macroKernel(bp []float32, stride int, g gemmArgs, i0, mb, p0, p1, pc, kb int, accumulate bool) {
	var tmp [mr * nr]float32
	var edge [mr * kc]float32
	var packed *[]float32
	if g.transA {
		// A stored k×m: one depth step of a micro-panel is 6 floats a whole
		// row apart, so reading it in place touches a new cache line and
		// often a new page per step. Copy the block into contiguous 6×kb
		// micro-panels once; every column panel then reuses them.
		packed = getBuf((mb + mr - 1) / mr * mr * kb)
		packATrans(*packed, g, i0, mb, pc, kb)
		defer packPool.Put(packed)
	}
	// A micro-panels first (only a final partial one is copied). When the
	// task's packed B is larger than half of L2, the BLIS loop order: each
	// 16 KB B micro-panel stays in L1 while the block's A micro-panels
	// (≤ 96 KB) stream past it; the other order would re-read all of B
	// from L3 for every six rows. A smaller B stays in L2 either way, and
	// then keeping the six A rows in L1 measured faster (TrainStep A/B).
	type aPanel struct {
		a     []float32
		lda   int
		trans bool
		rows  int
	}
	var panels [mc / mr]aPanel
	np := 0
	for ir := 0; ir < mb; ir += mr {
		rows := min(mr, mb-ir)
		var a []float32
		lda, trans := g.lda, g.transA
		switch {
		case packed != nil:
			a, lda = (*packed)[ir*kb:(ir+mr)*kb], mr
		case rows < mr:
			for p := 0; p < kb; p++ {
				for i := 0; i < mr; i++ {
					v := float32(0)
					if i < rows {
						v = g.a[(i0+ir+i)*g.lda+pc+p]
					}
					edge[p*mr+i] = v
				}
			}
			a, lda, trans = edge[:kb*mr], mr, true
		default:
			a = g.a[(i0+ir)*g.lda+pc : (i0+ir+mr-1)*g.lda+pc+kb]
		}
		panels[np] = aPanel{a, lda, trans, rows}
		np++
	}
	tile := func(q, jp int) {
		pn := panels[q]
		ir, j0 := q*mr, jp*nr
		cols := min(nr, g.n-j0)
		bpan := bp[jp*stride : jp*stride+nr*kb]
		if pn.rows == mr && cols == nr {
			kernel6x16(kb, pn.a, pn.lda, pn.trans, bpan, g.c[(i0+ir)*g.ldc+j0:], g.ldc, accumulate)
			return
		}
		kernel6x16(kb, pn.a, pn.lda, pn.trans, bpan, tmp[:], nr, false)
		for i := 0; i < pn.rows; i++ {
			c := g.c[(i0+ir+i)*g.ldc+j0 : (i0+ir+i)*g.ldc+j0+cols]
			t := tmp[i*nr : i*nr+cols]
			if accumulate {
				for j := range c {
					c[j] += t[j]
				}
			} else {
				copy(c, t)
			}
		}
	}
	if (p1-p0)*nr*kb > 128*1024 { // floats: 512 KB
		for jp := p0; jp < p1; jp++ {
			for q := 0; q < np; q++ {
				tile(q, jp)
			}
		}
		return
	}
	for q := 0; q < np; q++ {
		for jp := p0; jp < p1; jp++ {
			tile(q, jp)
		}
	}
}

// kernel6x16Go is the portable micro-kernel: c[6×16] (+)= A·b with A read
// as a[i*lda+p] (or a[p*lda+i] when trans) and b packed depth-major.
func kernel6x16Go(k int, a []float32, lda int, trans bool, b, c []float32, ldc int, accumulate bool) {
	var acc [mr][nr]float32
	for p := 0; p < k; p++ {
		bv := b[p*nr : p*nr+nr]
		for i := 0; i < mr; i++ {
			var x float32
			if trans {
				x = a[p*lda+i]
			} else {
				x = a[i*lda+p]
			}
			row := &acc[i]
			for j := 0; j < nr; j++ {
				row[j] += x * bv[j]
			}
		}
	}
	for i := 0; i < mr; i++ {
		row := c[i*ldc : i*ldc+nr]
		if accumulate {
			for j := range row {
				row[j] += acc[i][j]
			}
		} else {
			copy(row, acc[i][:])
		}
	}
}

// packATrans copies rows [i0, i0+mb) × depth [pc, pc+kb) of op(A) = Aᵀ
// (A stored k×m) into depth-major micro-panels of mr rows, the last one
// zero-padded: panel q holds dst[q·mr·kb + p·mr + i].
func packATrans(dst []float32, g gemmArgs, i0, mb, pc, kb int) {
	for ir := 0; ir < mb; ir += mr {
		rows := min(mr, mb-ir)
		d := dst[ir*kb : (ir+mr)*kb]
		src := g.a[pc*g.lda+i0+ir:]
		if rows == mr {
			for p := 0; p < kb; p++ {
				s := src[p*g.lda : p*g.lda+mr]
				o := d[p*mr : p*mr+mr]
				o[0], o[1], o[2], o[3], o[4], o[5] = s[0], s[1], s[2], s[3], s[4], s[5]
			}
			continue
		}
		for p := 0; p < kb; p++ {
			o := d[p*mr : p*mr+mr]
			copy(o, src[p*g.lda:p*g.lda+rows])
			clear(o[rows:])
		}
	}
}
