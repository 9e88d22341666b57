package retrieval

// porterStem stems a lower-case ASCII word in place with Martin Porter's
// 1980 algorithm ("An algorithm for suffix stripping") and returns the
// stemmed prefix. It allocates nothing. Words of one or two letters are left
// alone, as in Porter's reference implementation.
func porterStem(w []byte) []byte {
	if len(w) <= 2 {
		return w
	}
	s := stemmer{b: w, k: len(w)}
	s.step1ab()
	if s.k > 1 {
		s.step1c()
		s.step2()
		s.step3()
		s.step4()
		s.step5()
	}
	return s.b[:s.k]
}

// stemmer holds the word b[:k]; j marks the end of the stem once a suffix
// has matched (b[:j] is the stem, b[j:k] the suffix).
type stemmer struct {
	b    []byte
	k, j int
}

// cons reports whether b[i] is a consonant: not a vowel, and y only after a
// vowel (or at the start).
func (s *stemmer) cons(i int) bool {
	switch s.b[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !s.cons(i-1)
	}
	return true
}

// m measures the stem b[:j]: the number of vowel-consonant sequences VC in
// its form [C](VC)^m[V].
func (s *stemmer) m() int {
	n, i := 0, 0
	for {
		if i >= s.j {
			return n
		}
		if !s.cons(i) {
			break
		}
		i++
	}
	i++
	for {
		for {
			if i >= s.j {
				return n
			}
			if s.cons(i) {
				break
			}
			i++
		}
		i++
		n++
		for {
			if i >= s.j {
				return n
			}
			if !s.cons(i) {
				break
			}
			i++
		}
		i++
	}
}

// vowelInStem reports whether b[:j] contains a vowel.
func (s *stemmer) vowelInStem() bool {
	for i := 0; i < s.j; i++ {
		if !s.cons(i) {
			return true
		}
	}
	return false
}

// doublec reports whether b[i-1:i+1] is a double consonant.
func (s *stemmer) doublec(i int) bool {
	return i >= 1 && s.b[i] == s.b[i-1] && s.cons(i)
}

// cvc reports whether b[i-2:i+1] is consonant-vowel-consonant and the last
// consonant is not w, x or y (the *o condition, used to restore an e).
func (s *stemmer) cvc(i int) bool {
	if i < 2 || !s.cons(i) || s.cons(i-1) || !s.cons(i-2) {
		return false
	}
	switch s.b[i] {
	case 'w', 'x', 'y':
		return false
	}
	return true
}

// ends reports whether b[:k] ends with suffix, and sets j to the stem end.
func (s *stemmer) ends(suffix string) bool {
	n := len(suffix)
	if n > s.k {
		return false
	}
	if string(s.b[s.k-n:s.k]) != suffix {
		return false
	}
	s.j = s.k - n
	return true
}

// setTo replaces b[j:k] with r. r is never longer than the suffix it
// replaces, so the word never grows.
func (s *stemmer) setTo(r string) {
	copy(s.b[s.j:], r)
	s.k = s.j + len(r)
}

func (s *stemmer) replaceIfM0(r string) {
	if s.m() > 0 {
		s.setTo(r)
	}
}

func (s *stemmer) step1ab() {
	if s.b[s.k-1] == 's' {
		switch {
		case s.ends("sses"):
			s.k -= 2
		case s.ends("ies"):
			s.setTo("i")
		case s.k >= 2 && s.b[s.k-2] != 's':
			s.k--
		}
	}
	if s.ends("eed") {
		if s.m() > 0 {
			s.k--
		}
		return
	}
	if (s.ends("ed") || s.ends("ing")) && s.vowelInStem() {
		s.k = s.j
		switch {
		case s.ends("at"):
			s.setTo("ate")
		case s.ends("bl"):
			s.setTo("ble")
		case s.ends("iz"):
			s.setTo("ize")
		case s.doublec(s.k - 1):
			switch s.b[s.k-1] {
			case 'l', 's', 'z':
			default:
				s.k--
			}
		default:
			s.j = s.k
			if s.m() == 1 && s.cvc(s.k-1) {
				s.setTo("e")
			}
		}
	}
}

// setTo for step 1b's "at" -> "ate" grows the word by one byte, which is
// safe: the "ed"/"ing" just removed left at least two bytes of room.

func (s *stemmer) step1c() {
	if s.ends("y") && s.vowelInStem() {
		s.b[s.k-1] = 'i'
	}
}

func (s *stemmer) step2() {
	if s.k < 2 {
		return
	}
	switch s.b[s.k-2] {
	case 'a':
		if s.ends("ational") {
			s.replaceIfM0("ate")
		} else if s.ends("tional") {
			s.replaceIfM0("tion")
		}
	case 'c':
		if s.ends("enci") {
			s.replaceIfM0("ence")
		} else if s.ends("anci") {
			s.replaceIfM0("ance")
		}
	case 'e':
		if s.ends("izer") {
			s.replaceIfM0("ize")
		}
	case 'l':
		switch {
		case s.ends("abli"):
			s.replaceIfM0("able")
		case s.ends("alli"):
			s.replaceIfM0("al")
		case s.ends("entli"):
			s.replaceIfM0("ent")
		case s.ends("eli"):
			s.replaceIfM0("e")
		case s.ends("ousli"):
			s.replaceIfM0("ous")
		}
	case 'o':
		switch {
		case s.ends("ization"):
			s.replaceIfM0("ize")
		case s.ends("ation"):
			s.replaceIfM0("ate")
		case s.ends("ator"):
			s.replaceIfM0("ate")
		}
	case 's':
		switch {
		case s.ends("alism"):
			s.replaceIfM0("al")
		case s.ends("iveness"):
			s.replaceIfM0("ive")
		case s.ends("fulness"):
			s.replaceIfM0("ful")
		case s.ends("ousness"):
			s.replaceIfM0("ous")
		}
	case 't':
		switch {
		case s.ends("aliti"):
			s.replaceIfM0("al")
		case s.ends("iviti"):
			s.replaceIfM0("ive")
		case s.ends("biliti"):
			s.replaceIfM0("ble")
		}
	}
}

func (s *stemmer) step3() {
	switch s.b[s.k-1] {
	case 'e':
		switch {
		case s.ends("icate"):
			s.replaceIfM0("ic")
		case s.ends("ative"):
			s.replaceIfM0("")
		case s.ends("alize"):
			s.replaceIfM0("al")
		}
	case 'i':
		if s.ends("iciti") {
			s.replaceIfM0("ic")
		}
	case 'l':
		if s.ends("ical") {
			s.replaceIfM0("ic")
		} else if s.ends("ful") {
			s.replaceIfM0("")
		}
	case 's':
		if s.ends("ness") {
			s.replaceIfM0("")
		}
	}
}

func (s *stemmer) step4() {
	if s.k < 2 {
		return
	}
	switch s.b[s.k-2] {
	case 'a':
		if !s.ends("al") {
			return
		}
	case 'c':
		if !s.ends("ance") && !s.ends("ence") {
			return
		}
	case 'e':
		if !s.ends("er") {
			return
		}
	case 'i':
		if !s.ends("ic") {
			return
		}
	case 'l':
		if !s.ends("able") && !s.ends("ible") {
			return
		}
	case 'n':
		if !s.ends("ant") && !s.ends("ement") && !s.ends("ment") && !s.ends("ent") {
			return
		}
	case 'o':
		if s.ends("ion") && s.j >= 1 && (s.b[s.j-1] == 's' || s.b[s.j-1] == 't') {
			break
		}
		if !s.ends("ou") {
			return
		}
	case 's':
		if !s.ends("ism") {
			return
		}
	case 't':
		if !s.ends("ate") && !s.ends("iti") {
			return
		}
	case 'u':
		if !s.ends("ous") {
			return
		}
	case 'v':
		if !s.ends("ive") {
			return
		}
	case 'z':
		if !s.ends("ize") {
			return
		}
	default:
		return
	}
	if s.m() > 1 {
		s.k = s.j
	}
}

func (s *stemmer) step5() {
	s.j = s.k
	if s.b[s.k-1] == 'e' {
		s.j = s.k - 1
		if a := s.m(); a > 1 || (a == 1 && !s.cvc(s.k-2)) {
			s.k--
		}
	}
	s.j = s.k
	if s.b[s.k-1] == 'l' && s.doublec(s.k-1) && s.m() > 1 {
		s.k--
	}
}
