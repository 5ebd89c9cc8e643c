package main

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Punycode parameters (RFC 3492 section 5).
const (
	punyBase        = 36
	punyTMin        = 1
	punyTMax        = 26
	punySkew        = 38
	punyDamp        = 700
	punyInitialBias = 72
	punyInitialN    = 0x80
	punyMaxDelta    = 1 << 30 // far above any 63-character label; guards the sums
)

// aceLabel returns the ASCII-compatible form of a label ("xn--" and its
// punycode, RFC 3490 section 5) and true, or false if the label is all
// ASCII or too long to encode. It lower-cases with unicode.ToLower and does
// not apply the rest of IDNA's mapping (NFC, width folding): it is a
// suggestion for an error message, not a resolver's IDNA.
func aceLabel(label string) (string, bool) {
	runes := []rune(strings.Map(unicode.ToLower, label))
	var out []byte
	basic := 0
	for _, r := range runes {
		if r < punyInitialN {
			out = append(out, byte(r))
			basic++
		}
	}
	if basic == len(runes) {
		return "", false
	}
	if basic > 0 {
		out = append(out, '-')
	}
	n, delta, bias := rune(punyInitialN), 0, punyInitialBias
	for h := basic; h < len(runes); {
		m := rune(utf8.MaxRune + 1)
		for _, r := range runes {
			if r >= n && r < m {
				m = r
			}
		}
		delta += int(m-n) * (h + 1)
		if delta > punyMaxDelta {
			return "", false
		}
		n = m
		for _, r := range runes {
			if r < n {
				delta++
			}
			if r != n {
				continue
			}
			q := delta
			for k := punyBase; ; k += punyBase {
				t := min(max(k-bias, punyTMin), punyTMax)
				if q < t {
					break
				}
				out = append(out, punyDigit(t+(q-t)%(punyBase-t)))
				q = (q - t) / (punyBase - t)
			}
			out = append(out, punyDigit(q))
			bias = punyAdapt(delta, h+1, h == basic)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return "xn--" + string(out), true
}

// punyDigit is the lower-case digit of value d, 0 ≤ d < punyBase.
func punyDigit(d int) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

// punyAdapt is the bias adaptation of RFC 3492 section 6.1.
func punyAdapt(delta, points int, first bool) int {
	if first {
		delta /= punyDamp
	} else {
		delta /= 2
	}
	delta += delta / points
	k := 0
	for delta > (punyBase-punyTMin)*punyTMax/2 {
		delta /= punyBase - punyTMin
		k += punyBase
	}
	return k + (punyBase-punyTMin+1)*delta/(delta+punySkew)
}

// aceName returns name, lower case, with every non-ASCII label in its ACE form, and
// true, if that form is a plausible domain: each non-ASCII character is a
// letter, mark or digit and each label fits in 63 characters. Otherwise it
// returns false.
func aceName(name string) (string, bool) {
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(name, ".")), ".")
	for i, l := range labels {
		for _, r := range l {
			if r >= utf8.RuneSelf && !unicode.IsLetter(r) && !unicode.IsMark(r) && !unicode.IsDigit(r) {
				return "", false
			}
		}
		if a, ok := aceLabel(l); ok {
			if len(a) > dnsMaxLabelLen {
				return "", false
			}
			labels[i] = a
		}
	}
	return strings.Join(labels, "."), true
}
