package retrieval

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

func analyzeStrings(a analyzer, text string) []string {
	var t terms
	a.analyze(text, &t)
	out := make([]string, t.len())
	for i := range out {
		out[i] = string(t.at(i))
	}
	return out
}

func TestAnalyze(t *testing.T) {
	plain := analyzer{}
	english := analyzer{stem: true, stop: true}
	tests := []struct {
		name string
		a    analyzer
		in   string
		want string
	}{
		{"lower and split", plain, "Hello, World! foo-bar_baz", "hello world foo bar baz"},
		{"possessive and apostrophes", plain, "John's dog doesn't O'Neill’s rock'n'roll '90s", "john dog doesnt oneill rocknroll 90s"},
		{"numbers", plain, "pi is 3.14, pop. 1,000,000 in 2010. v1.2", "pi is 3.14 pop 1000000 in 2010 v1.2"},
		{"unicode letters", plain, "Röntgen ÉCOLE naïve Ωmega Москва", "röntgen école naïve ωmega москва"},
		{"combining marks stay in the word", plain, "cafe\u0301 ok", "cafe\u0301 ok"},
		{"han characters one by one", plain, "北京大学 in 東京", "北 京 大 学 in 東 京"},
		{"english stop and stem", english, "The runners were running to the hills of Kentucky", "runner were run hill kentucki"},
		{"stemming skips words with digits or non-ASCII", english, "MP3s Röntgens connections", "mp3s röntgens connect"},
		{"long tokens dropped", plain, "ok " + strings.Repeat("x", 65) + " fine", "ok fine"},
		{"empty", english, "  ,;  ", ""},
		{"quotes around words", plain, "'quoted' \"double\"", "quoted double"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(analyzeStrings(tc.a, tc.in), " ")
			if got != tc.want {
				t.Errorf("analyze(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestPorterGolden compares the stemmer with the Snowball implementation of
// the original Porter algorithm on 20,910 corpus words (see
// testdata/gen_porter_golden.py).
func TestPorterGolden(t *testing.T) {
	f, err := os.Open("testdata/porter_golden.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n, bad := 0, 0
	for sc.Scan() {
		word, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("bad golden line %q", sc.Text())
		}
		n++
		if got := string(porterStem([]byte(word))); got != want {
			bad++
			if bad <= 20 {
				t.Errorf("porterStem(%q) = %q, want %q", word, got, want)
			}
		}
	}
	if n < 20000 {
		t.Fatalf("only %d golden words", n)
	}
	if bad > 0 {
		t.Errorf("%d of %d words differ", bad, n)
	}
}

func TestPorterClassics(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"caresses", "caress"}, {"ponies", "poni"}, {"ties", "ti"}, {"cats", "cat"},
		{"feed", "feed"}, {"agreed", "agre"}, {"plastered", "plaster"}, {"motoring", "motor"},
		{"sing", "sing"}, {"conflated", "conflat"}, {"troubled", "troubl"}, {"sized", "size"},
		{"hopping", "hop"}, {"tanned", "tan"}, {"falling", "fall"}, {"hissing", "hiss"},
		{"fizzed", "fizz"}, {"failing", "fail"}, {"filing", "file"}, {"happy", "happi"},
		{"sky", "sky"}, {"relational", "relat"}, {"conditional", "condit"}, {"rational", "ration"},
		{"digitizer", "digit"}, {"generalization", "gener"}, {"oscillators", "oscil"},
		{"hopefulness", "hope"}, {"electrical", "electr"}, {"adjustment", "adjust"},
		{"adoption", "adopt"}, {"controlling", "control"}, {"rolling", "roll"}, {"as", "as"}, {"a", "a"},
	} {
		if got := string(porterStem([]byte(tc.in))); got != tc.want {
			t.Errorf("porterStem(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func BenchmarkAnalyze(b *testing.B) {
	text := strings.Repeat("The Recovery of Aristotle spanned about 100 years, from the middle 12th century into the 13th century, and copied or translated over 42 books. ", 4)
	a := analyzer{stem: true, stop: true}
	var t terms
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		t.reset()
		a.analyze(text, &t)
	}
}
