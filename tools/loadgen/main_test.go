package main

import (
	"net/netip"
	"testing"
)

func TestAllowedTarget(t *testing.T) {
	tests := []struct {
		name string
		addr string
		want bool
	}{
		{"test-net-1", "192.0.2.1", true},
		{"test-net-2", "198.51.100.10", true},
		{"test-net-3", "203.0.113.200", true},
		{"ipv6 documentation", "2001:db8::1", true},
		{"loopback", "127.0.0.1", true},
		{"ipv6 loopback", "::1", true},
		{"public", "8.8.8.8", false},
		{"private", "10.0.0.1", false},
		{"ipv6 public", "2001:4860::8888", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allowedTarget(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("allowedTarget(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestParseFlagsBounds(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"public target", []string{"-target", "8.8.8.8:53"}, false},
		{"rate too high", []string{"-rate", "3000000"}, false},
		{"too long", []string{"-duration", "1h"}, false},
		{"batch too big", []string{"-batch", "1000"}, false},
		{"documentation source", []string{"-source", "192.0.2.1:53", "-responses"}, true},
		{"public source", []string{"-source", "8.8.8.8:53"}, false},
		{"bad source", []string{"-source", "192.0.2.1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args)
			if (err == nil) != tt.ok {
				t.Fatalf("parseFlags(%q) error %v, want ok %v", tt.args, err, tt.ok)
			}
			if err == nil && (c.count <= 0 || c.count > maxPackets) {
				t.Errorf("count %d out of bounds", c.count)
			}
		})
	}
}

func TestDNSTTQueryShape(t *testing.T) {
	for _, payload := range []int{0, 40, 100, 130} {
		q := dnsttQuery(7, 0x0102030405060708, payload, "t.example.com")
		if len(q) < 60 || len(q) > 283 {
			t.Errorf("payload %d: query of %d bytes, want 60..283, near the reference client's 79..283", payload, len(q))
		}
		if q[12] > 63 {
			t.Errorf("payload %d: first label %d bytes", payload, q[12])
		}
	}
}

func TestDNSTTResponseShape(t *testing.T) {
	q := dnsttQuery(7, 0x0102030405060708, 40, "t.example.com")
	for _, n := range responseLens {
		r := dnsttResponse(q, n)
		if r[0] != q[0] || r[1] != q[1] || r[2]&0x80 == 0 {
			t.Fatalf("txt %d: header % x, want the query's ID and QR set", n, r[:4])
		}
		// header + question (the query's, without its 11-byte OPT) +
		// answer (pointer, type, class, TTL, rdlength) + rdata.
		want := len(q) - 11 + 12 + n + (n+254)/255
		if len(r) != want {
			t.Errorf("txt %d: response of %d bytes, want %d", n, len(r), want)
		}
		if len(r) > 1232 {
			t.Errorf("txt %d: %d bytes, over dnstt's default maximum of 1232", n, len(r))
		}
	}
}
