package main

import (
	"strings"
	"testing"
)

// TestACELabel checks the punycode encoder against RFC 3492 section 7.1
// samples and forms Python's punycode codec gives.
func TestACELabel(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{name: "ASCII", in: "example", ok: false},
		{name: "empty", in: "", ok: false},
		{name: "one letter", in: "ü", want: "xn--tda", ok: true},
		{name: "basic first", in: "tü", want: "xn--t-eha", ok: true},
		{name: "bücher", in: "bücher", want: "xn--bcher-kva", ok: true},
		{name: "upper case folded", in: "MÜNCHEN", want: "xn--mnchen-3ya", ok: true},
		{name: "no basic", in: "日本語", want: "xn--wgv71a119e", ok: true},
		{name: "greek", in: "ελληνικά", want: "xn--hxargifdar", ok: true},
		{name: "sharp s kept", in: "faß", want: "xn--fa-hia", ok: true},
		// RFC 3492 section 7.1 (A), Arabic (Egyptian).
		{name: "RFC 3492 A", in: "\u0644\u064A\u0647\u0645\u0627\u0628\u062A\u0643\u0644\u0645\u0648\u0634\u0639\u0631\u0628\u064A\u061F", want: "xn--egbpdaj6bu4bxfgehfvwxn", ok: true},
		// RFC 3492 section 7.1 (L), Japanese: 3<nen>B<gumi><kinpachi><sensei>.
		{name: "RFC 3492 L", in: "3\u5E74B\u7D44\u91D1\u516B\u5148\u751F", want: "xn--3b-ww4c5e180e575a65lsy2b", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := aceLabel(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("aceLabel(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestACEName checks that only plausible names get a suggestion.
func TestACEName(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{name: "one label", in: "tü.example.com", want: "xn--t-eha.example.com", ok: true},
		{name: "trailing dot", in: "tü.example.com.", want: "xn--t-eha.example.com", ok: true},
		{name: "symbol", in: "t☃.com", ok: false},
		{name: "not UTF-8", in: "t\xfc.com", ok: false},
		{name: "too long", in: strings.Repeat("ä", 62) + ".com", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := aceName(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("aceName(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}
