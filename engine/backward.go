package engine

import (
	"context"
	"math"
)

// The backward pass, op by op in reverse order of forward. Every function
// here adds into gradient buffers, so repeated calls accumulate until the
// optimiser step.

// headLoss computes logits for the final hidden states in row chunks (so a
// T×vocab matrix never exists), the per-token logprobs and losses, and —
// when grads is non-nil — the gradient with respect to hF and the output
// head. dhF must be zeroed, T×d. With dhF but no grads (a frozen base)
// only dhF is computed.
func (m *Model) headLoss(ctx context.Context, p, grads *Params, a *activations, ex []Example, loss Loss, dhF []float32) (*StepResult, error) {
	c := m.Config
	d, V := c.HiddenSize, c.VocabSize
	res := &StepResult{Logprobs: make([][]float32, len(ex)), Elementwise: make([][]float32, len(ex))}
	// Row → (example, index) map.
	type ref struct{ e, i int }
	refs := make([]ref, a.T)
	norm := float32(1)
	nActive := 0
	for ei, s := range a.spans {
		res.Logprobs[ei] = make([]float32, s.n)
		res.Elementwise[ei] = make([]float32, s.n)
		for i := 0; i < s.n; i++ {
			refs[s.row+i] = ref{ei, i}
			if loss.active(&ex[ei], i) {
				nActive++
			}
		}
	}
	if loss.TokenMean && nActive > 0 {
		norm = 1 / float32(nActive)
	}
	const chunk = 256
	logits := m.arena.get(chunk * V)
	// A batch of several chunks packs the head once per call for both of
	// its products (as op(B) = Wᵀ for the logits and as W for dhF); a
	// batch of a few rows multiplies by the head in place, as packing its
	// vocab×d values twice would cost more than the products.
	var headT, headN *packedB
	if a.T > thinRows {
		headT = packWeight(p.lmHead, V, d)
		if dhF != nil {
			headN = packMatrix(p.lmHead, d, false, d, V)
		}
	}
	var actRows []int
	var hAct, dAct []float32
	if dhF != nil {
		actRows = make([]int, 0, chunk)
		hAct, dAct = m.arena.get(chunk*d), m.arena.get(chunk*d)
	}
	invT := loss.invTemperature()
	var lossSum float64
	var clipped, ratioSum float64
	for r0 := 0; r0 < a.T; r0 += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows := min(chunk, a.T-r0)
		z := logits[:rows*V]
		if headT != nil {
			matMulPacked(z, a.hF[r0*d:(r0+rows)*d], rows, headT, false)
		} else {
			matMulNT(z, a.hF[r0*d:(r0+rows)*d], p.lmHead, rows, d, V, false)
		}
		if invT != 1 {
			// Tempered logits z/T; their gradient is scaled by 1/T below.
			parallelRows(rows, V, func(lo, hi int) {
				for i := lo * V; i < hi*V; i++ {
					z[i] *= invT
				}
			})
		}
		coefs := make([]float32, rows)
		lses := make([]float32, rows)
		parallelRows(rows, V, func(lo, hi int) {
			tmp := make([]float32, V)
			for r := lo; r < hi; r++ {
				lses[r] = logSumExpBuf(z[r*V:r*V+V], tmp)
			}
		})
		for r := 0; r < rows; r++ {
			rf := refs[r0+r]
			e := &ex[rf.e]
			logp := z[r*V+e.Target[rf.i]] - lses[r]
			res.Logprobs[rf.e][rf.i] = logp
			l, coef, clip := loss.tokenTerm(e, rf.i, logp)
			l *= norm
			coefs[r] = coef * norm * invT
			res.Elementwise[rf.e][rf.i] = l
			lossSum += float64(l)
			if loss.Fn != CrossEntropy && loss.active(e, rf.i) {
				ratioSum += math.Exp(float64(logp - e.Logprobs[rf.i]))
				if clip {
					clipped++
				}
			}
		}
		if dhF == nil {
			continue
		}
		// A row whose coefficient is 0 (a masked token, or one PPO clips)
		// has dz = 0 and adds nothing to dhF or the head's gradient, so the
		// rows left are packed to the front and only they enter the two
		// products; an RL batch trains a small part of its tokens.
		act := actRows[:0]
		for r := 0; r < rows; r++ {
			if coefs[r] != 0 {
				act = append(act, r)
			}
		}
		if len(act) == 0 {
			continue
		}
		// dz_j = coef·(onehot_j − softmax_j)
		parallelRows(len(act), V, func(lo, hi int) {
			for _, r := range act[lo:hi] {
				zr := z[r*V : r*V+V]
				cf := coefs[r]
				expScaled(zr, zr, 1, lses[r])
				for j, v := range zr {
					zr[j] = -cf * v
				}
				rf := refs[r0+r]
				zr[ex[rf.e].Target[rf.i]] += cf
			}
		})
		na := len(act)
		hc, dc := hAct[:na*d], dAct[:na*d]
		for i, r := range act { // i ≤ r: moving rows forward in order is safe
			if i != r {
				copy(z[i*V:i*V+V], z[r*V:r*V+V])
			}
			copy(hc[i*d:i*d+d], a.hF[(r0+r)*d:(r0+r)*d+d])
		}
		zc := z[:na*V]
		if headN != nil {
			matMulPacked(dc, zc, na, headN, false)
		} else {
			matMulNN(dc, zc, p.lmHead, na, V, d, false)
		}
		for i, r := range act { // the other rows of dhF stay 0
			copy(dhF[(r0+r)*d:(r0+r)*d+d], dc[i*d:i*d+d])
		}
		if grads != nil {
			matMulTN(grads.lmHead, zc, hc, V, na, d, true)
		}
	}
	res.Loss = lossSum
	res.Metrics = map[string]float64{"tokens": float64(a.T), "active_tokens": float64(nActive)}
	if loss.Fn != CrossEntropy && nActive > 0 {
		res.Metrics["ratio_mean"] = ratioSum / float64(nActive)
		res.Metrics["clip_fraction"] = clipped / float64(nActive)
	}
	return res, nil
}

// backward propagates dhF through the decoder into grads. With an
// adapter ad (the one the forward pass used for every row) its factor
// gradients go to ag; grads may then be nil, which freezes the base: no
// base gradient is computed at all.
func (m *Model) backward(ctx context.Context, p, grads *Params, a *activations, dhF []float32, ad, ag *Adapter) error {
	c := m.Config
	T := a.T
	d, hd := c.HiddenSize, c.headDim()
	H, KV := c.NumAttentionHeads, c.NumKeyValueHeads
	qd, kvd, ff := H*hd, KV*hd, c.IntermediateSize
	maxPos := 0
	for _, s := range a.spans {
		maxPos = max(maxPos, s.pos0+s.n)
	}
	cos, sin := m.rope.upTo(maxPos)
	base := grads != nil
	// gradOf picks a base gradient buffer, or nil when the base is frozen.
	gradOf := func(f func(*Params) []float32) []float32 {
		if !base {
			return nil
		}
		return f(grads)
	}
	dx := m.arena.get(T * d)
	rmsNormBackward(dx, gradOf(func(g *Params) []float32 { return g.norm }), dhF, a.xLast, a.rmsF, p.norm, T, d)

	dh := m.arena.get(T * d)
	dact := m.arena.get(T * ff)
	dgate := m.arena.get(T * ff)
	dup := m.arena.get(T * ff)
	datt := m.arena.get(T * qd)
	dq := m.arena.get(T * qd)
	dk := m.arena.get(T * kvd)
	dv := m.arena.get(T * kvd)
	for l := c.NumHiddenLayers - 1; l >= 0; l-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		la, lp := &a.layers[l], &p.layers[l]
		lg := &layerParams{} // nil buffers: frozen base
		if base {
			lg = &grads.layers[l]
		}
		// MLP: x_out = x2 + act·Wdownᵀ
		if base {
			matMulTN(lg.wDown, dx, la.act, d, T, ff, true)
		}
		matMulNN(dact, dx, lp.wDown, T, d, ff, false)
		if ad != nil {
			ad.loraBackward(ag, dact, dx, la.act, la.lu[loraDown], l, loraDown, T)
		}
		swigluBackward(dgate, dup, dact, la.gate, la.up)
		if base {
			matMulTN(lg.wGate, dgate, la.h2, ff, T, d, true)
			matMulTN(lg.wUp, dup, la.h2, ff, T, d, true)
		}
		matMulNN(dh, dgate, lp.wGate, T, ff, d, false)
		matMulNN(dh, dup, lp.wUp, T, ff, d, true)
		if ad != nil {
			ad.loraBackward(ag, dh, dgate, la.h2, la.lu[loraGate], l, loraGate, T)
			ad.loraBackward(ag, dh, dup, la.h2, la.lu[loraUp], l, loraUp, T)
		}
		// dx now means d(x2): the residual path plus the post-norm path.
		rmsNormBackward(dx, lg.postNorm, dh, la.x2, la.rms2, lp.postNorm, T, d)

		// Attention output: x2 = x + att·Woᵀ (+bo)
		if lg.bo != nil {
			biasGrad(lg.bo, dx, T, d)
		}
		if base {
			matMulTN(lg.wo, dx, la.att, d, T, qd, true)
		}
		matMulNN(datt, dx, lp.wo, T, d, qd, false)
		if ad != nil {
			ad.loraBackward(ag, datt, dx, la.att, la.lu[loraO], l, loraO, T)
		}
		clear(dk)
		clear(dv)
		m.attentionBackward(la, datt, dq, dk, dv, a.spans)
		ropeApply(dq, qd, T, H, hd/2, a.pos, cos, sin, true)
		ropeApply(dk, kvd, T, KV, hd/2, a.pos, cos, sin, true)
		if c.qkNorm() {
			// dq holds d(normed q); turn it into d(qPre).
			dqPre := m.arena.get(T * qd)
			dkPre := m.arena.get(T * kvd)
			rmsNormBackward(dqPre, lg.qNorm, dq, la.qPre, la.qRms, lp.qNorm, T*H, hd)
			rmsNormBackward(dkPre, lg.kNorm, dk, la.kPre, la.kRms, lp.kNorm, T*KV, hd)
			copy(dq, dqPre)
			copy(dk, dkPre)
		}
		if lg.bq != nil {
			biasGrad(lg.bq, dq, T, qd)
			biasGrad(lg.bk, dk, T, kvd)
			biasGrad(lg.bv, dv, T, kvd)
		}
		if base {
			matMulTN(lg.wq, dq, la.h1, qd, T, d, true)
			matMulTN(lg.wk, dk, la.h1, kvd, T, d, true)
			matMulTN(lg.wv, dv, la.h1, kvd, T, d, true)
		}
		// The first layer's input gradient feeds only the embedding's
		// gradient: with a frozen base nothing reads it.
		dhIn := dh
		if !base && l == 0 {
			dhIn = nil
		}
		if dhIn != nil {
			matMulNN(dh, dq, lp.wq, T, qd, d, false)
			matMulNN(dh, dk, lp.wk, T, kvd, d, true)
			matMulNN(dh, dv, lp.wv, T, kvd, d, true)
		}
		if ad != nil {
			ad.loraBackward(ag, dhIn, dq, la.h1, la.lu[loraQ], l, loraQ, T)
			ad.loraBackward(ag, dhIn, dk, la.h1, la.lu[loraK], l, loraK, T)
			ad.loraBackward(ag, dhIn, dv, la.h1, la.lu[loraV], l, loraV, T)
		}
		if dhIn != nil {
			rmsNormBackward(dx, lg.inNorm, dh, la.x, la.rms1, lp.inNorm, T, d)
		}
	}
	if !base {
		return nil
	}
	// Embedding: scatter-add rows (tied heads share this buffer).
	for t, tok := range a.tokens {
		addInto(grads.embed[tok*d:tok*d+d], dx[t*d:t*d+d])
	}
	return nil
}

// attentionBackward runs one task per (span, kv head) so that heads sharing
// a kv head never write the same dk/dv rows concurrently.
func (m *Model) attentionBackward(la *layerActs, datt, dq, dk, dv []float32, spans []span) {
	c := m.Config
	hd, H, KV := c.headDim(), c.NumAttentionHeads, c.NumKeyValueHeads
	qd, kvd, G := H*hd, KV*hd, H/KV
	scale := float32(1 / math.Sqrt(float64(hd)))
	parallelTasks(len(spans)*KV, 0, func(t int) {
		s, kh := spans[t/KV], t%KV
		scratch := getBuf(2*attnBlock*s.n + attnBlock)
		keys, vals := la.k[s.row*kvd+kh*hd:], la.v[s.row*kvd+kh*hd:]
		kT, _, kN, vT := packKV(keys, vals, kvd, s.n, hd, true)
		for h := kh * G; h < (kh+1)*G; h++ {
			attnBackward(attnHead{
				q: la.q[s.row*qd+h*hd:], ldq: qd, k: keys, v: vals, ldkv: kvd,
				out: la.att[s.row*qd+h*hd:], ldo: qd, lse: la.lse[s.row*H+h:], ldl: H,
				nq: s.n, hd: hd, scale: scale, kT: kT, kN: kN, vT: vT,
			}, attnGrad{dout: datt[s.row*qd+h*hd:], dq: dq[s.row*qd+h*hd:],
				dk: dk[s.row*kvd+kh*hd:], dv: dv[s.row*kvd+kh*hd:]}, *scratch)
		}
		packPool.Put(scratch)
	})
}
