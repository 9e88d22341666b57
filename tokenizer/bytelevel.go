package tokenizer

// Byte-level BPE (GPT-2 and its descendants, Qwen included) stores every
// token as a string of printable code points: each byte maps to one rune so
// that vocab files never contain spaces or control characters. Bytes that are
// already printable map to themselves; the rest are shifted to U+0100 and up,
// in byte order.

// byteLevelTable holds both directions of the byte <-> rune mapping.
type byteLevelTable struct {
	byteToRune [256]rune
	runeToByte [byteRuneLimit]int16 // -1 for runes that stand for no byte
}

// byteRuneLimit bounds the runes of the table: the 68 shifted bytes end at
// U+0143.
const byteRuneLimit = 0x144

func newByteLevelTable() *byteLevelTable {
	t := &byteLevelTable{}
	for i := range t.runeToByte {
		t.runeToByte[i] = -1
	}
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	next := rune(256)
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !printable(b) {
			r = next
			next++
		}
		t.byteToRune[b] = r
		t.runeToByte[r] = int16(b)
	}
	return t
}

// byteLevel is immutable after construction, so one shared copy is safe.
var byteLevel = newByteLevelTable()

// decodeString maps a byte-level string back to raw bytes, the way HF's
// ByteLevel decoder does: a token whose runes are all in the table becomes
// those bytes; any other token keeps its own UTF-8 bytes.
func (t *byteLevelTable) decodeString(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r >= byteRuneLimit || t.runeToByte[r] < 0 {
			return []byte(s)
		}
		out = append(out, byte(t.runeToByte[r]))
	}
	return out
}
