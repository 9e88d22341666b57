package engine

import (
	"context"
	"errors"
	"math"
	"sync"
)

// Model is a set of weights with what is derived from them: the RoPE table
// and, for sampling, weight matrices packed once for the matrix kernel.
type Model struct {
	Config  *Config
	W       *Weights
	Version int
	rope    *ropeTable

	packOnce sync.Once
	packed   []layerPacked
	headPack *packedB

	// arena, when set, supplies the training pass's buffers (the Learner
	// sets it and serialises its calls); nil means plain allocation.
	arena *floatArena
}

type layerPacked struct {
	wq, wk, wv, wo, wGate, wUp, wDown *packedB
}

// NewModel wraps weights for inference and training.
func NewModel(w *Weights, version int) *Model {
	return &Model{Config: w.Config, W: w, Version: version, rope: newRopeTable(w.Config.headDim(), w.Config.RopeTheta)}
}

func (m *Model) packAll() {
	m.packOnce.Do(func() {
		c := m.Config
		d, qd, kvd, ff := c.HiddenSize, c.NumAttentionHeads*c.headDim(), c.NumKeyValueHeads*c.headDim(), c.IntermediateSize
		m.packed = make([]layerPacked, c.NumHiddenLayers)
		for l, lp := range m.W.layers {
			m.packed[l] = layerPacked{
				wq: packWeight(lp.wq, qd, d), wk: packWeight(lp.wk, kvd, d), wv: packWeight(lp.wv, kvd, d),
				wo: packWeight(lp.wo, d, qd), wGate: packWeight(lp.wGate, ff, d), wUp: packWeight(lp.wUp, ff, d),
				wDown: packWeight(lp.wDown, d, ff),
			}
		}
		m.headPack = packWeight(m.W.lmHead, c.VocabSize, d)
	})
}

// span is one sequence's rows in a packed batch: rows [row, row+n) hold
// positions [pos0, pos0+n). In training (cache == nil) keys and values come
// from the batch itself and pos0 is 0; when sampling they are appended to
// the sequence's KV cache first.
type span struct {
	row, n, pos0 int
	cache        *kvCache
	// lora, when set, adds this adapter's low-rank terms to the span's
	// rows; sampling batches may mix adapters, training uses one for all.
	lora *Adapter
}

// layerActs are the activations one layer's backward pass needs.
type layerActs struct {
	x, h1, q, k, v, qPre, kPre, att, x2, h2, gate, up, act []float32
	rms1, qRms, kRms, lse, rms2                            []float32
	// lu[m] is s·x·Aᵀ of LoRA projection m (training with an adapter).
	lu [loraNumModules][]float32
}

// activations of a training forward pass over T packed rows.
type activations struct {
	T      int
	tokens []int
	pos    []int
	spans  []span
	layers []layerActs
	xLast  []float32 // residual stream after the last layer
	rmsF   []float32
	hF     []float32 // final normalised hidden state
}

// forward runs the decoder over packed rows and returns the final
// normalised hidden states [T×d]. With save it keeps what backward needs;
// without it buffers are reused layer to layer.
func (m *Model) forward(ctx context.Context, p *Params, tokens []int, spans []span, save bool, usePacked bool) (*activations, error) {
	c := m.Config
	T := len(tokens)
	d, hd := c.HiddenSize, c.headDim()
	H, KV := c.NumAttentionHeads, c.NumKeyValueHeads
	qd, kvd, ff := H*hd, KV*hd, c.IntermediateSize
	a := &activations{T: T, tokens: tokens, spans: spans, pos: make([]int, T)}
	maxPos := 0
	for _, s := range spans {
		for i := 0; i < s.n; i++ {
			a.pos[s.row+i] = s.pos0 + i
		}
		maxPos = max(maxPos, s.pos0+s.n)
	}
	cos, sin := m.rope.upTo(maxPos)
	hasLoRA := false
	for _, s := range spans {
		if s.lora != nil {
			hasLoRA = true
			if save && s.lora != spans[0].lora {
				return nil, errors.New("training batch mixes LoRA adapters")
			}
		}
	}
	if usePacked {
		m.packAll()
	}

	x := m.arena.get(T * d)
	for t, tok := range tokens {
		copy(x[t*d:t*d+d], p.embed[tok*d:tok*d+d])
	}
	newBufs := func() layerActs {
		la := layerActs{h1: m.arena.get(T * d), q: m.arena.get(T * qd), k: m.arena.get(T * kvd),
			v: m.arena.get(T * kvd), att: m.arena.get(T * qd), x2: m.arena.get(T * d),
			h2: m.arena.get(T * d), gate: m.arena.get(T * ff), up: m.arena.get(T * ff),
			act: m.arena.get(T * ff), rms1: m.arena.get(T), rms2: m.arena.get(T),
			lse: m.arena.get(T * H)}
		if c.qkNorm() {
			la.qPre, la.kPre = m.arena.get(T*qd), m.arena.get(T*kvd)
			la.qRms, la.kRms = m.arena.get(T*H), m.arena.get(T*KV)
		}
		return la
	}
	var shared layerActs
	if save {
		a.layers = make([]layerActs, c.NumHiddenLayers)
	} else {
		shared = newBufs()
	}
	linear := func(dst, in []float32, w []float32, pk *packedB, out, inDim int) {
		if usePacked {
			matMulPacked(dst, in, T, pk, false)
		} else {
			matMulNT(dst, in, w, T, inDim, out, false)
		}
	}
	for l, lp := range p.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var pk layerPacked
		if usePacked {
			pk = m.packed[l]
		}
		la := shared
		if save {
			la = newBufs()
		}
		la.x = x
		rmsNormForward(la.h1, la.rms1, x, lp.inNorm, T, d, c.RMSNormEps)
		linear(la.q, la.h1, lp.wq, pk.wq, qd, d)
		linear(la.k, la.h1, lp.wk, pk.wk, kvd, d)
		linear(la.v, la.h1, lp.wv, pk.wv, kvd, d)
		if hasLoRA {
			m.applyLoRA(la.q, la.h1, spans, &la, save, l, loraQ)
			m.applyLoRA(la.k, la.h1, spans, &la, save, l, loraK)
			m.applyLoRA(la.v, la.h1, spans, &la, save, l, loraV)
		}
		if lp.bq != nil {
			addBias(la.q, lp.bq, T, qd)
			addBias(la.k, lp.bk, T, kvd)
			addBias(la.v, lp.bv, T, kvd)
		}
		if c.qkNorm() {
			copy(la.qPre, la.q)
			copy(la.kPre, la.k)
			rmsNormForward(la.q, la.qRms, la.qPre, lp.qNorm, T*H, hd, c.RMSNormEps)
			rmsNormForward(la.k, la.kRms, la.kPre, lp.kNorm, T*KV, hd, c.RMSNormEps)
		}
		ropeApply(la.q, qd, T, H, hd/2, a.pos, cos, sin, false)
		ropeApply(la.k, kvd, T, KV, hd/2, a.pos, cos, sin, false)
		for _, s := range spans {
			if s.cache != nil {
				s.cache.appendRows(l, la.k[s.row*kvd:(s.row+s.n)*kvd], la.v[s.row*kvd:(s.row+s.n)*kvd])
			}
		}
		m.attentionForward(la, spans, l)
		x2 := la.x2
		linear(x2, la.att, lp.wo, pk.wo, d, qd)
		if hasLoRA {
			m.applyLoRA(x2, la.att, spans, &la, save, l, loraO)
		}
		if lp.bo != nil {
			addBias(x2, lp.bo, T, d)
		}
		addInto(x2, x)
		rmsNormForward(la.h2, la.rms2, x2, lp.postNorm, T, d, c.RMSNormEps)
		linear(la.gate, la.h2, lp.wGate, pk.wGate, ff, d)
		linear(la.up, la.h2, lp.wUp, pk.wUp, ff, d)
		if hasLoRA {
			m.applyLoRA(la.gate, la.h2, spans, &la, save, l, loraGate)
			m.applyLoRA(la.up, la.h2, spans, &la, save, l, loraUp)
		}
		swigluForward(la.act, la.gate, la.up)
		next := m.arena.get(T * d)
		if !save {
			next = x // the previous residual is dead once x2 holds it
		}
		linear(next, la.act, lp.wDown, pk.wDown, d, ff)
		if hasLoRA {
			m.applyLoRA(next, la.act, spans, &la, save, l, loraDown)
		}
		addInto(next, x2)
		x = next
		if save {
			a.layers[l] = la
		}
	}
	a.xLast = x
	a.rmsF = m.arena.get(T)
	a.hF = m.arena.get(T * d)
	rmsNormForward(a.hF, a.rmsF, x, p.norm, T, d, c.RMSNormEps)
	return a, nil
}

// applyLoRA adds projection mod's adapter term for every run of
// consecutive spans that share an adapter. With save (one adapter for the
// whole batch) it keeps s·x·Aᵀ in la.lu for the backward pass.
func (m *Model) applyLoRA(dst, x []float32, spans []span, la *layerActs, save bool, layer, mod int) {
	for i := 0; i < len(spans); {
		ad := spans[i].lora
		j := i + 1
		for j < len(spans) && spans[j].lora == ad && spans[j].row == spans[j-1].row+spans[j-1].n {
			j++
		}
		if ad != nil {
			r0, n := spans[i].row, spans[j-1].row+spans[j-1].n-spans[i].row
			var u []float32
			if save {
				u = m.arena.get(n * ad.Rank)
				la.lu[mod] = u
			}
			ad.loraForward(dst, x, u, layer, mod, r0, n)
		}
		i = j
	}
}

// attentionForward runs every (span, head) pair, spread over the cores. A
// decoding span (one new token) runs one task per kv head, stacking the
// group's query heads into one product so the cached keys are read once.
func (m *Model) attentionForward(la layerActs, spans []span, layer int) {
	c := m.Config
	hd, H, KV := c.headDim(), c.NumAttentionHeads, c.NumKeyValueHeads
	qd, kvd, G := H*hd, KV*hd, H/KV
	scale := float32(1 / math.Sqrt(float64(hd)))
	type task struct{ s, h int }
	var tasks []task
	for i, s := range spans {
		if s.n == 1 && s.cache != nil {
			for kh := 0; kh < KV; kh++ {
				tasks = append(tasks, task{i, -1 - kh})
			}
			continue
		}
		for kh := 0; kh < KV; kh++ {
			tasks = append(tasks, task{i, kh})
		}
	}
	parallelTasks(len(tasks), 0, func(t int) {
		s := spans[tasks[t].s]
		if h := tasks[t].h; h < 0 {
			kh := -1 - h
			scratch := getBuf(G * (s.pos0 + 1))
			attnForward(attnHead{
				q: la.q[s.row*qd+kh*G*hd:], ldq: hd,
				k: s.cache.k[layer][kh*hd:], v: s.cache.v[layer][kh*hd:], ldkv: kvd,
				out: la.att[s.row*qd+kh*G*hd:], ldo: hd, lse: la.lse[s.row*H+kh*G:], ldl: 1,
				nq: G, pos0: s.pos0, hd: hd, scale: scale, decode: true,
			}, *scratch)
			packPool.Put(scratch)
			return
		}
		kh := tasks[t].h
		keys, vals := la.k[s.row*kvd+kh*hd:], la.v[s.row*kvd+kh*hd:]
		pos0 := 0
		if s.cache != nil {
			keys, vals = s.cache.k[layer][kh*hd:], s.cache.v[layer][kh*hd:]
			pos0 = s.pos0
		}
		kT, vN, _, _ := packKV(keys, vals, kvd, pos0+s.n, hd, false)
		scratch := getBuf(attnBlock * (pos0 + s.n))
		for h := kh * G; h < (kh+1)*G; h++ {
			attnForward(attnHead{
				q: la.q[s.row*qd+h*hd:], ldq: qd, k: keys, v: vals, ldkv: kvd,
				out: la.att[s.row*qd+h*hd:], ldo: qd, lse: la.lse[s.row*H+h:], ldl: H,
				nq: s.n, pos0: pos0, hd: hd, scale: scale, kT: kT, vN: vN,
			}, *scratch)
		}
		packPool.Put(scratch)
	})
}
