package engine

// kvCache holds one sequence's keys and values, per layer, as rows of
// num_key_value_heads·head_dim floats (RoPE already applied to keys).
type kvCache struct {
	k, v [][]float32
	kvd  int
}

func newKVCache(c *Config) *kvCache {
	return &kvCache{k: make([][]float32, c.NumHiddenLayers), v: make([][]float32, c.NumHiddenLayers),
		kvd: c.NumKeyValueHeads * c.headDim()}
}

// len is the number of cached positions.
func (c *kvCache) len() int { return len(c.k[len(c.k)-1]) / c.kvd }

func (c *kvCache) appendRows(layer int, k, v []float32) {
	c.k[layer] = append(c.k[layer], k...)
	c.v[layer] = append(c.v[layer], v...)
}

// truncate keeps the first n positions (prefix reuse).
func (c *kvCache) truncate(n int) {
	for l := range c.k {
		c.k[l] = c.k[l][:n*c.kvd]
		c.v[l] = c.v[l][:n*c.kvd]
	}
}

// bytes is the memory the cache holds (capacity, not length).
func (c *kvCache) bytes() int {
	n := 0
	for l := range c.k {
		n += 4 * (cap(c.k[l]) + cap(c.v[l]))
	}
	return n
}
