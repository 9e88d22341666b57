package engine

import (
	"math"
)

// Causal attention for one (sequence, head) pair, computed a block of
// queries at a time with matrix multiplies and without keeping the
// probability matrix: the forward pass saves only log Σ exp per query, and
// the backward pass recomputes the probabilities from it (the
// FlashAttention recipe). Memory is O(block·keys), not O(keys²), which is
// what lets agent contexts of thousands of tokens train.

const attnBlock = 64

// attnHead points at one head's strided rows. Row r of q is
// q[r*ldq : r*ldq+hd]; keys and values share ldkv. Query row r sits at
// absolute position pos0+r and sees keys [0, pos0+r].
type attnHead struct {
	q        []float32
	ldq      int
	k, v     []float32
	ldkv     int
	out      []float32
	ldo      int
	lse      []float32 // lse[r*ldl], may be nil at inference
	ldl      int
	nq, pos0 int
	hd       int
	scale    float32
	// decode marks nq query rows that all sit at position pos0 (the heads
	// of one GQA group at a decoding step), so they share one key block.
	decode bool
	// Keys and values packed once per (sequence, kv head) for the matrix
	// kernel: kT as op(B) = Kᵀ (for Q·Kᵀ), vN as V (for P·V), and for the
	// backward pass kN as K (dS·K) and vT as Vᵀ (dO·Vᵀ). Nil ones are
	// packed per call.
	kT, vN, kN, vT *packedB
}

// packKV packs one kv head's keys and values (rows [0, n), stride ldkv).
func packKV(k, v []float32, ldkv, n, hd int, backward bool) (kT, vN, kN, vT *packedB) {
	kT = packMatrix(k, ldkv, true, n, hd)
	if !backward {
		vN = packMatrix(v, ldkv, false, hd, n)
		return kT, vN, nil, nil
	}
	kN = packMatrix(k, ldkv, false, hd, n)
	vT = packMatrix(v, ldkv, true, n, hd)
	return kT, nil, kN, vT
}

// attnForward computes out = softmax(q·kᵀ·scale, causal)·v for one head.
// scratch must hold attnBlock·(pos0+nq) floats.
func attnForward(h attnHead, scratch []float32) {
	// The probabilities stay unnormalised through P·V; each output row is
	// scaled by its 1/Σ afterwards (hd values instead of nk per row).
	var inv [attnBlock]float32
	for i0 := 0; i0 < h.nq; i0 += attnBlock {
		bq := min(attnBlock, h.nq-i0)
		nk := h.pos0 + i0 + bq // keys visible to the last query of the block
		if h.decode {
			nk = h.pos0 + 1
		}
		s := scratch[:bq*nk]
		gemmPre(gemmArgs{m: bq, n: nk, k: h.hd, a: h.q[i0*h.ldq:], lda: h.ldq,
			b: h.k, ldb: h.ldkv, transB: true, c: s, ldc: nk, threads: 1}, h.kT)
		for r := 0; r < bq; r++ {
			row := s[r*nk : r*nk+nk]
			visible := h.pos0 + i0 + r + 1
			if h.decode {
				visible = nk
			}
			vis := row[:visible]
			mx := maxf32(vis) * h.scale
			expScaled(vis, vis, h.scale, mx)
			sum := sumf32(vis)
			inv[r] = 1 / sum
			clear(row[visible:])
			if h.lse != nil {
				h.lse[(i0+r)*h.ldl] = mx + float32(math.Log(float64(sum)))
			}
		}
		gemmPre(gemmArgs{m: bq, n: h.hd, k: nk, a: s, lda: nk, b: h.v, ldb: h.ldkv,
			c: h.out[i0*h.ldo:], ldc: h.ldo, threads: 1}, h.vN)
		for r := 0; r < bq; r++ {
			o := h.out[(i0+r)*h.ldo : (i0+r)*h.ldo+h.hd]
			f := inv[r]
			for j := range o {
				o[j] *= f
			}
		}
	}
}

// attnGrad holds one head's gradient buffers, strided like attnHead.
type attnGrad struct {
	dout   []float32 // incoming dO rows, ldo
	dq     []float32 // written, ldq
	dk, dv []float32 // accumulated, ldkv
}

// attnBackward adds one head's contribution to dq, dk, dv. With P the
// recomputed probabilities and D_i = dO_i·O_i:
//
//	dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP − D)·scale,  dQ = dS·K,  dK += dSᵀ·Q.
//
// scratch must hold 2·attnBlock·(pos0+nq) + attnBlock floats.
func attnBackward(h attnHead, g attnGrad, scratch []float32) {
	for i0 := 0; i0 < h.nq; i0 += attnBlock {
		bq := min(attnBlock, h.nq-i0)
		nk := h.pos0 + i0 + bq
		p := scratch[:bq*nk]
		dp := scratch[bq*nk : 2*bq*nk]
		dsum := scratch[2*bq*nk : 2*bq*nk+bq]
		gemmPre(gemmArgs{m: bq, n: nk, k: h.hd, a: h.q[i0*h.ldq:], lda: h.ldq,
			b: h.k, ldb: h.ldkv, transB: true, c: p, ldc: nk, threads: 1}, h.kT)
		for r := 0; r < bq; r++ {
			row := p[r*nk : r*nk+nk]
			visible := h.pos0 + i0 + r + 1
			expScaled(row[:visible], row[:visible], h.scale, h.lse[(i0+r)*h.ldl])
			clear(row[visible:])
			do := g.dout[(i0+r)*h.ldo : (i0+r)*h.ldo+h.hd]
			o := h.out[(i0+r)*h.ldo : (i0+r)*h.ldo+h.hd]
			var d float32
			for i := range do {
				d += do[i] * o[i]
			}
			dsum[r] = d
		}
		// dV[0:nk] += Pᵀ·dO
		gemm(gemmArgs{m: nk, n: h.hd, k: bq, a: p, lda: nk, transA: true,
			b: g.dout[i0*h.ldo:], ldb: h.ldo, c: g.dv, ldc: h.ldkv, accumulate: true, threads: 1})
		// dP = dO·Vᵀ
		gemmPre(gemmArgs{m: bq, n: nk, k: h.hd, a: g.dout[i0*h.ldo:], lda: h.ldo,
			b: h.v, ldb: h.ldkv, transB: true, c: dp, ldc: nk, threads: 1}, h.vT)
		for r := 0; r < bq; r++ {
			// Only the visible keys: beyond them p is 0, and so is dS.
			visible := h.pos0 + i0 + r + 1
			pr, dr := p[r*nk:r*nk+visible], dp[r*nk:r*nk+nk]
			d := dsum[r]
			dsScale(dr[:visible], pr, d, h.scale)
			clear(dr[visible:])
		}
		// dQ = dS·K
		gemmPre(gemmArgs{m: bq, n: h.hd, k: nk, a: dp, lda: nk, b: h.k, ldb: h.ldkv,
			c: g.dq[i0*h.ldq:], ldc: h.ldq, threads: 1}, h.kN)
		// dK[0:nk] += dSᵀ·Q
		gemm(gemmArgs{m: nk, n: h.hd, k: bq, a: dp, lda: nk, transA: true,
			b: h.q[i0*h.ldq:], ldb: h.ldq, c: g.dk, ldc: h.ldkv, accumulate: true, threads: 1})
	}
}
