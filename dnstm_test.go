package main

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeKey is the start of every private key in the dnstm fixtures: it must
// never appear in an error, a log line or a metric.
const fakeKey = "FAKEKEY0"

// dnstmTestTunnel is a tunnels[] entry in dnstm's schema, with a fake
// private key of the transport's kind.
func dnstmTestTunnel(tag, transport, domain string, enabled *bool, vaydns map[string]any) map[string]any {
	t := map[string]any{"tag": tag, "transport": transport, "backend": "socks", "domain": domain, "port": 5310}
	if enabled != nil {
		t["enabled"] = *enabled
	}
	switch transport {
	case dnstmDNSTT:
		t["dnstt"] = map[string]any{"mtu": 1232, "private_key": fakeKey + "dnstt" + tag}
	case dnstmVayDNS:
		v := map[string]any{"mtu": 1232, "private_key": fakeKey + "vaydns" + tag}
		for k, x := range vaydns {
			v[k] = x
		}
		t["vaydns"] = v
	case dnstmSlipstream:
		t["slipstream"] = map[string]any{"cert": "/etc/dnstm/tunnels/" + tag + "/cert.pem", "key": fakeKey + "slip" + tag}
	}
	return t
}

// dnstmTestConfig returns a config.json in dnstm's schema.
func dnstmTestConfig(t testing.TB, mode, active string, tunnels ...map[string]any) []byte {
	t.Helper()
	if tunnels == nil {
		tunnels = []map[string]any{}
	}
	b, err := json.MarshalIndent(map[string]any{
		"log":      map[string]any{"level": "info"},
		"listen":   map[string]any{"address": "0.0.0.0:53"},
		"backends": []map[string]any{{"tag": "socks", "type": "socks", "address": "127.0.0.1:1080", "socks": map[string]any{"user": "u", "password": fakeKey + "socks"}}},
		"tunnels":  tunnels,
		"route":    map[string]any{"mode": mode, "active": active, "default": active},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	yes = new(bool)
	no  = new(bool)
)

func init() { *yes = true }

// vay returns a VayDNS domain for the tests, failing on bad settings.
func vay(t testing.TB, name string, size int, rt string) tunnelDomain {
	t.Helper()
	d, err := newVayDNSDomain(name, size, rt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseDnstmConfig(t *testing.T) {
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata/dnstm", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dnstt, vaydns, slip := dnstmDNSTT, dnstmVayDNS, dnstmSlipstream
	shared := []map[string]any{
		dnstmTestTunnel("a", dnstt, "t.example.com", yes, nil),
		dnstmTestTunnel("b", vaydns, "t.example.com", no, map[string]any{"clientid_size": 4, "record_type": "null"}),
	}
	for _, tt := range []struct {
		name    string
		file    []byte
		want    []tunnelDomain
		skipped []string
		err     string // substring of the error; "" = none
	}{
		{name: "fixture single dnstt", file: fixture("single-dnstt.json"), want: dnsttDomains("t.example.com")},
		{name: "fixture single vaydns", file: fixture("single-vaydns.json"), want: []tunnelDomain{vay(t, "t.example.com", 2, "txt")}},
		{name: "fixture multi", file: fixture("multi.json"),
			want:    []tunnelDomain{dnsttDomain("a.example.com"), vay(t, "b.example.com", 2, "txt"), vay(t, "c.example.com", 4, "cname"), dnsttDomain("d.example.com")},
			skipped: []string{"slip (slipstream)"}},
		{name: "fixture malformed", file: fixture("malformed.json"), err: "not valid JSON at byte offset 700"},

		// Single mode: route.active decides between tunnels sharing a
		// domain, whatever their enabled flags say.
		{name: "single active dnstt", file: dnstmTestConfig(t, "single", "a", shared...), want: dnsttDomains("t.example.com")},
		{name: "single active vaydns disabled", file: dnstmTestConfig(t, "single", "b", shared...), want: []tunnelDomain{vay(t, "t.example.com", 4, "null")}},
		{name: "empty mode is single", file: dnstmTestConfig(t, "", "b", shared...), want: []tunnelDomain{vay(t, "t.example.com", 4, "null")}},
		{name: "single no active", file: dnstmTestConfig(t, "single", "", shared...)},
		{name: "single active slipstream", file: dnstmTestConfig(t, "single", "s", dnstmTestTunnel("s", slip, "s.example.com", nil, nil)),
			skipped: []string{"s (slipstream)"}},
		{name: "single active unknown", file: dnstmTestConfig(t, "single", "x", shared...), err: `route.active "x": no tunnel has this tag`},
		{name: "unknown mode", file: dnstmTestConfig(t, "round-robin", "a", shared...), err: `route.mode "round-robin": want single or multi`},
		{name: "no tunnels", file: []byte(`{}`)},

		// Multi mode: every enabled tunnel.
		{name: "multi shared domain different settings", file: dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", dnstt, "t.example.com", nil, nil),
			dnstmTestTunnel("b", vaydns, "T.example.com.", yes, nil)),
			err: `tunnels "a" and "b": domain "t.example.com" with different settings (dnstt; vaydns clientid-size=2,record-type=txt)`},
		{name: "multi shared domain one disabled", file: dnstmTestConfig(t, "multi", "", shared...), want: dnsttDomains("t.example.com")},
		{name: "multi shared domain same settings", file: dnstmTestConfig(t, "multi", "",
			dnstmTestTunnel("a", vaydns, "t.example.com", nil, map[string]any{"clientid_size": 2}),
			dnstmTestTunnel("b", vaydns, "T.EXAMPLE.COM", nil, map[string]any{"record_type": "TXT"})),
			want: []tunnelDomain{vay(t, "t.example.com", 2, "txt")}},
		{name: "multi compat and dnstt share", file: dnstmTestConfig(t, "multi", "",
			dnstmTestTunnel("a", vaydns, "t.example.com", nil, map[string]any{"dnstt_compat": true}),
			dnstmTestTunnel("b", dnstt, "t.example.com", nil, nil)),
			want: dnsttDomains("t.example.com")},
		{name: "multi enabled null", file: []byte(`{"tunnels":[{"tag":"a","transport":"dnstt","domain":"a.example.com","enabled":null}],"route":{"mode":"multi"}}`),
			want: dnsttDomains("a.example.com")},
		{name: "multi vaydns without settings", file: []byte(`{"tunnels":[{"tag":"a","transport":"vaydns","domain":"a.example.com"}],"route":{"mode":"multi"}}`),
			want: []tunnelDomain{vay(t, "a.example.com", 2, "txt")}},
		{name: "multi every size and type", file: dnstmTestConfig(t, "multi", "",
			dnstmTestTunnel("a", vaydns, "a.example.com", nil, map[string]any{"clientid_size": 1, "record_type": "a"}),
			dnstmTestTunnel("b", vaydns, "b.example.com", nil, map[string]any{"clientid_size": 8, "record_type": "aaaa"}),
			dnstmTestTunnel("c", vaydns, "c.example.com", nil, map[string]any{"clientid_size": 3, "record_type": "mx"}),
			dnstmTestTunnel("d", vaydns, "d.example.com", nil, map[string]any{"clientid_size": 5, "record_type": "ns"}),
			dnstmTestTunnel("e", vaydns, "e.example.com", nil, map[string]any{"clientid_size": 6, "record_type": "srv"}),
			dnstmTestTunnel("f", vaydns, "f.example.com", nil, map[string]any{"clientid_size": 7, "record_type": "null"})),
			want: []tunnelDomain{vay(t, "a.example.com", 1, "a"), vay(t, "b.example.com", 8, "aaaa"), vay(t, "c.example.com", 3, "mx"),
				vay(t, "d.example.com", 5, "ns"), vay(t, "e.example.com", 6, "srv"), vay(t, "f.example.com", 7, "null")}},
		{name: "multi bad size", file: dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", vaydns, "a.example.com", nil, map[string]any{"clientid_size": 9})),
			err: `tunnel "a": vaydns: clientid size 9: want 1 to 8`},
		{name: "multi bad type", file: dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", vaydns, "a.example.com", nil, map[string]any{"record_type": "ptr"})),
			err: `tunnel "a": vaydns: record type "ptr": want one of`},
		{name: "multi bad domain", file: dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", dnstt, "a..example.com", nil, nil)),
			err: `tunnel "a": dnstt: domain "a..example.com"`},
		{name: "bad settings of a tunnel not counted", file: dnstmTestConfig(t, "multi", "",
			dnstmTestTunnel("a", vaydns, "a.example.com", no, map[string]any{"clientid_size": 9}),
			dnstmTestTunnel("b", dnstt, "b.example.com", nil, nil)),
			want: dnsttDomains("b.example.com")},
		{name: "unknown transport", file: dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", "quic", "a.example.com", nil, nil),
			dnstmTestTunnel("b", dnstt, "b.example.com", nil, nil)),
			want: dnsttDomains("b.example.com"), skipped: []string{"a (quic)"}},
		{name: "type error", file: []byte(`{"tunnels":[{"tag":"a","transport":"vaydns","domain":"a.example.com","vaydns":{"clientid_size":"4"}}]}`),
			err: "tunnels.vaydns.clientid_size: wrong JSON type at byte offset"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDnstmConfig(tt.file)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.domains, tt.want) || !slices.Equal(got.skipped, tt.skipped) {
				t.Errorf("domains %+v, skipped %q; want %+v, %q", got.domains, got.skipped, tt.want, tt.skipped)
			}
		})
	}
}

// TestDnstmErrorsHideValues feeds parseDnstmConfig files broken in and
// around the fields that hold secrets: no error may quote any of them.
func TestDnstmErrorsHideValues(t *testing.T) {
	good := string(dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", dnstmVayDNS, "a.example.com", nil, nil)))
	key := fakeKey + "vaydnsa"
	at := strings.Index(good, key)
	var files []string
	for cut := range len(good) {
		files = append(files, good[:cut]) // truncated anywhere
	}
	for _, bad := range []string{`\q`, `"`, `", x`, "\x00", `\u12`} {
		files = append(files, good[:at+len(key)]+bad+good[at+len(key):]) // a broken key string
	}
	files = append(files,
		strings.Replace(good, `"mtu": 1232`, `"mtu": `+key, 1),
		strings.Replace(good, `"clientid_size"`, `"x"`, 1),
		`{"tunnels":[{"tag":"a","transport":"vaydns","domain":"a.example.com","vaydns":{"clientid_size":1234567890123456789012}}],"route":{"mode":"multi"}}`,
		`{"tunnels":[{"tag":"a","transport":"vaydns","domain":"a.example.com","vaydns":{"clientid_size":-7e3}}],"route":{"mode":"multi"}}`,
		`{"tunnels":[{"tag":"a","transport":"vaydns","domain":"a.example.com","vaydns":{"dnstt_compat":"`+key+`"}}],"route":{"mode":"multi"}}`,
		`{"tunnels":{"`+key+`":1}}`,
		`["`+key+`"]`,
		key,
	)
	for _, f := range files {
		_, err := parseDnstmConfig([]byte(f))
		if err == nil {
			continue
		}
		msg := err.Error()
		for _, secret := range []string{fakeKey, "1234567890", "7e3", "\x00"} {
			if strings.Contains(msg, secret) {
				t.Errorf("error %q quotes %q from the file:\n%s", msg, secret, f)
			}
		}
	}
}

func TestParseVayDNSDomain(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want tunnelDomain
		err  string
	}{
		{in: "t.example.com", want: vay(t, "t.example.com", 3, "null")},
		{in: "T.Example.com.:clientid-size=4", want: vay(t, "t.example.com", 4, "null")},
		{in: "t.example.com:record-type=CNAME", want: vay(t, "t.example.com", 3, "cname")},
		{in: "t.example.com:clientid-size=8,record-type=txt", want: vay(t, "t.example.com", 8, "txt")},
		{in: "t.example.com:record-type=srv,clientid-size=1", want: vay(t, "t.example.com", 1, "srv")},
		{in: "t.example.com:", err: "no settings after the colon"},
		{in: "t.example.com:clientid-size=9", err: "clientid size 9: want 1 to 8"},
		{in: "t.example.com:clientid-size=x", err: `clientid-size "x": want 1 to 8`},
		{in: "t.example.com:record-type=ptr", err: `record type "ptr"`},
		{in: "t.example.com:size=4", err: `setting "size=4": want clientid-size=N or record-type=TYPE`},
		{in: "t.example.com:clientid-size=4,clientid-size=5", err: "clientid-size given twice"},
		{in: "t.example.com:clientid-size=4,", err: `setting ""`},
		{in: ":clientid-size=4", err: "empty name"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseVayDNSDomain(tt.in, 3, "null")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// parseOwnConfig is parseTestConfig without its domain.
func parseOwnConfig(t *testing.T, args ...string) *config {
	t.Helper()
	cfg, _, _, err := parseConfig(args)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDnstmFlags checks -dnstm.config and the per-domain -vaydns.domain
// form at the command line: the domains they give, and every
// configuration error as one line, exit 2, without a key.
func TestDnstmFlags(t *testing.T) {
	multi := filepath.Join("testdata/dnstm", "multi.json")
	t.Run("domains", func(t *testing.T) {
		cfg := parseOwnConfig(t, "-dnstt.domain", "z.example.net", "-vaydns.domain", "y.example.net:record-type=null",
			"-vaydns.domain", "x.example.net", "-vaydns.clientid-size", "3", "-dnstm.config", multi)
		want := []tunnelDomain{dnsttDomain("z.example.net"), vay(t, "y.example.net", 3, "null"), vay(t, "x.example.net", 3, "txt"),
			dnsttDomain("a.example.com"), vay(t, "b.example.com", 2, "txt"), vay(t, "c.example.com", 4, "cname"), dnsttDomain("d.example.com")}
		if !slices.Equal(cfg.domains, want) || len(cfg.flagDomains) != 3 || !slices.Equal(cfg.dnstmNotes, []string{"slip (slipstream)"}) {
			t.Errorf("domains %+v (flags %d), notes %q", cfg.domains, len(cfg.flagDomains), cfg.dnstmNotes)
		}
	})
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	none := write("none.json", dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", dnstmDNSTT, "a.example.com", no, nil),
		dnstmTestTunnel("s", dnstmSlipstream, "s.example.com", nil, nil)))
	conflict := write("conflict.json", dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", dnstmDNSTT, "t.example.com", nil, nil),
		dnstmTestTunnel("b", dnstmVayDNS, "t.example.com", nil, map[string]any{"clientid_size": 4})))
	big := write("big.json", append([]byte(`{"x":"`), make([]byte, maxDnstmConfigSize)...))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-dnstm.config", multi, "-dnstt.domain", "A.example.com"},
			`-dnstm.config "testdata/dnstm/multi.json": tunnel "plain": domain "a.example.com" is also given as -dnstt.domain: give it in one place`},
		{[]string{"-dnstm.config", multi, "-vaydns.domain", "c.example.com:clientid-size=4,record-type=cname"},
			`-dnstm.config "testdata/dnstm/multi.json": tunnel "vay-cname": domain "c.example.com" is also given as -vaydns.domain: give it in one place`},
		{[]string{"-dnstm.config", "testdata/dnstm/malformed.json"},
			`-dnstm.config "testdata/dnstm/malformed.json": not valid JSON at byte offset 700`},
		{[]string{"-dnstm.config", conflict},
			`-dnstm.config "` + conflict + `": tunnels "a" and "b": domain "t.example.com" with different settings (dnstt; vaydns clientid-size=4,record-type=txt)`},
		{[]string{"-dnstm.config", none},
			`-dnstm.config "` + none + `": no dnstt or VayDNS tunnel to count (single mode: route.active's; multi mode: every enabled one), and no -dnstt.domain or -vaydns.domain`},
		{[]string{"-dnstm.config", filepath.Join(dir, "missing.json")},
			`-dnstm.config "` + filepath.Join(dir, "missing.json") + `": no such file or directory`},
		{[]string{"-dnstm.config", dir}, `-dnstm.config "` + dir + `": is a directory`},
		{[]string{"-dnstm.config", big}, `-dnstm.config "` + big + `": larger than 16MiB`},
		{[]string{"-vaydns.domain", "t.example.com:clientid-size=0"},
			`-vaydns.domain "t.example.com:clientid-size=0": clientid size 0: want 1 to 8`},
		{[]string{"-vaydns.domain", "t.example.com:rt=txt"},
			`-vaydns.domain "t.example.com:rt=txt": setting "rt=txt": want clientid-size=N or record-type=TYPE`},
		{[]string{"-vaydns.domain", "t.example.com:clientid-size=4", "-vaydns.domain", "T.example.com"},
			`-vaydns.domain "T.example.com": given twice`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runExecute(t, nil, append(tt.args, "-capture.file", sampleCapture, "-log.level", "debug")...)
			if res.code != exitUsage || res.stdout != "" || res.stderr != programName+": "+tt.want+"\n" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", res.code, res.stdout, res.stderr, tt.want)
			}
			if strings.Contains(res.stderr, fakeKey) {
				t.Errorf("stderr holds a key: %q", res.stderr)
			}
		})
	}
}

// TestDnstmFileMode replays the real captures through dnstm configs that
// describe their servers: the output is the one of the flags that say
// the same, which the other file-mode tests hold to the truth files, and
// the totals are checked against the truth here too. No key reaches the
// output or the log at debug level.
func TestDnstmFileMode(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A multi-mode host whose tunnel on t.example.com is the capture's
	// server, beside the others of multi.json's kinds.
	others := []map[string]any{
		dnstmTestTunnel("plain", dnstmDNSTT, "a.example.com", yes, nil),
		dnstmTestTunnel("vay-cname", dnstmVayDNS, "c.example.com", nil, map[string]any{"clientid_size": 4, "record_type": "cname"}),
		dnstmTestTunnel("compat", dnstmVayDNS, "d.example.com", nil, map[string]any{"dnstt_compat": true}),
		dnstmTestTunnel("stopped", dnstmVayDNS, "t.example.com", no, map[string]any{"clientid_size": 8, "record_type": "null"}),
		dnstmTestTunnel("slip", dnstmSlipstream, "f.example.com", nil, nil),
	}
	for _, tt := range []struct {
		name, capture, truth, config string
		flags                        []string
	}{
		{"visible-small single", sampleCapture, sampleTruthFile, "testdata/dnstm/single-dnstt.json",
			[]string{"-dnstt.domain", "t.example.com"}},
		{"vaydns-small single", vaydnsCapture, vaydnsTruthFile, "testdata/dnstm/single-vaydns.json",
			[]string{"-vaydns.domain", "t.example.com"}},
		{"visible-small multi", sampleCapture, sampleTruthFile,
			write("multi-dnstt.json", dnstmTestConfig(t, "multi", "plain", append(others, dnstmTestTunnel("t", dnstmDNSTT, "t.example.com", nil, nil))...)),
			[]string{"-dnstt.domain", "a.example.com", "-vaydns.domain", "c.example.com:clientid-size=4,record-type=cname", "-dnstt.domain", "d.example.com",
				"-dnstt.domain", "t.example.com"}},
		{"vaydns-small multi", vaydnsCapture, vaydnsTruthFile,
			write("multi-vaydns.json", dnstmTestConfig(t, "multi", "plain", append(others, dnstmTestTunnel("t", dnstmVayDNS, "t.example.com", yes, nil))...)),
			[]string{"-dnstt.domain", "a.example.com", "-vaydns.domain", "c.example.com:clientid-size=4,record-type=cname", "-dnstt.domain", "d.example.com",
				"-vaydns.domain", "t.example.com"}},
		{"visible-small compat", sampleCapture, sampleTruthFile,
			write("single-compat.json", dnstmTestConfig(t, "single", "t", dnstmTestTunnel("t", dnstmVayDNS, "t.example.com", nil, map[string]any{"dnstt_compat": true}))),
			[]string{"-dnstt.domain", "t.example.com"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := runExecute(t, nil, "-dnstm.config", tt.config, "-capture.file", tt.capture, "-log.level", "debug")
			if res.code != 0 {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			flags := runExecute(t, nil, append(tt.flags, "-capture.file", tt.capture)...)
			if flags.code != 0 || res.stdout != flags.stdout {
				t.Errorf("output differs from the flags' (exit %d, stderr %q):\n%s\nwant:\n%s", flags.code, flags.stderr, res.stdout, flags.stdout)
			}
			truth := loadTruth(t, tt.truth)
			e := parseExposition(t, res.stdout)
			d := `domain="` + truth.Domain + `"`
			for _, c := range []struct {
				name string
				want uint64
			}{
				{"dnstt_queries_total", truth.Totals.Queries},
				{"dnstt_bytes_in_total", truth.Totals.BytesIn},
				{"dnstt_bytes_out_total", truth.Totals.BytesOut},
				{"dnstt_sessions_total", truth.Totals.SessionsTotal},
			} {
				if got := e.sum(c.name, d); got != float64(c.want) {
					t.Errorf("%s{%s} = %v, want %d", c.name, d, got, c.want)
				}
				if got := e.sum(c.name); got != float64(c.want) {
					t.Errorf("%s = %v over every domain, want %d", c.name, got, c.want)
				}
			}
			if got := e.sum("dnstt_exporter_packets_received_total"); got != float64(truth.Packets.Total) {
				t.Errorf("received %v, want %d", got, truth.Packets.Total)
			}
			if strings.Contains(res.stdout+res.stderr, fakeKey) {
				t.Errorf("a key reached the output or the log:\n%s\n%s", res.stderr, res.stdout)
			}
		})
	}
	t.Run("slipstream noted once", func(t *testing.T) {
		res := runExecute(t, nil, "-dnstm.config", "testdata/dnstm/multi.json", "-capture.file", sampleCapture, "-log.level", "debug")
		if res.code != 0 || strings.Count(res.stderr, "not counted") != 1 || !strings.Contains(res.stderr, "slip (slipstream)") ||
			strings.Contains(res.stdout+res.stderr, fakeKey) {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
}

// vaydnsTestQuery returns a VayDNS data query of ClientID cid (its length
// is the size) under domain with type qtype.
func vaydnsTestQuery(id uint16, cid []byte, domain string, qtype uint16) []byte {
	raw := append(slices.Clone(cid), 3, 1, 2, 3)
	prefix := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	return dnsQuery(id, prefix+"."+domain, qtype)
}

// TestPipelineSetDomains changes the domains in force under a running
// pipeline, as a SIGHUP reload does: ids stay with names, counters of a
// removed domain stay exported and its sessions expire, a re-added domain
// continues its counters, domain_info follows, the id cap holds, and the
// packet path stays at zero allocations.
func TestPipelineSetDomains(t *testing.T) {
	cfg := parseOwnConfig(t, "-dnstt.domain", "a.example.com", "-dnstt.window", "2s")
	pl := newPipeline(cfg, nil, false)
	var failures atomic.Uint64
	failures.Add(3)
	m := newMetrics(metricsConfig{tunnels: pl.currentTunnels, sessions: pl.sessions, capture: pl.stats, reloadFailures: &failures})
	now := int64(time.Hour)
	sec := int64(time.Second)
	qa := testQ4(dnsttQuery(1, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, 20, "a.example.com"))
	qb2 := testQ4(vaydnsTestQuery(2, []byte{9, 9}, "b.example.com", dnsTypeTXT))
	qb4 := testQ4(vaydnsTestQuery(3, []byte{7, 7, 7, 7}, "b.example.com", dnsTypeCNAME))
	scrape := func() scrapeValues { return parseExposition(t, string(m.appendText(nil))) }
	check := func(step string, e scrapeValues, want map[string]float64) {
		t.Helper()
		for k, w := range want {
			if got, ok := e[k]; !ok || got != w {
				t.Errorf("%s: %s = %v (present %v), want %v", step, k, got, ok, w)
			}
		}
	}

	pl.handleIP(qa, 0, now)
	pl.handleIP(qb2, 0, now)
	check("start", scrape(), map[string]float64{
		`dnstt_queries_total{domain="a.example.com"}`:                                                              1,
		`dnstt_active_clients{domain="a.example.com"}`:                                                             1,
		`dnstt_exporter_packets_ignored_total{reason="not_tunnel"}`:                                                1,
		`dnstt_exporter_domain_info{domain="a.example.com",protocol="dnstt",record_type="txt",clientid_bytes="8"}`: 1,
	})

	if err := pl.setDomains([]tunnelDomain{vay(t, "b.example.com", 2, "txt")}); err != nil {
		t.Fatal(err)
	}
	pl.handleIP(qa, 0, now+sec)
	pl.handleIP(qb2, 0, now+sec)
	pl.sessions.sweep(now + 4*sec)
	e := scrape()
	check("a removed, b added", e, map[string]float64{
		`dnstt_queries_total{domain="a.example.com"}`:                                                               1,
		`dnstt_active_clients{domain="a.example.com"}`:                                                              0,
		`dnstt_sessions_total{domain="a.example.com"}`:                                                              1,
		`dnstt_queries_total{domain="b.example.com"}`:                                                               1,
		`dnstt_sessions_total{domain="b.example.com"}`:                                                              1,
		`dnstt_exporter_packets_ignored_total{reason="not_tunnel"}`:                                                 2,
		`dnstt_exporter_sessions_tracked`:                                                                           0,
		`dnstt_exporter_domain_info{domain="b.example.com",protocol="vaydns",record_type="txt",clientid_bytes="2"}`: 1,
	})
	if e.has(`dnstt_exporter_domain_info{domain="a.example.com",protocol="dnstt",record_type="txt",clientid_bytes="8"}`) {
		t.Errorf("domain_info still lists a.example.com")
	}

	if err := pl.setDomains([]tunnelDomain{vay(t, "b.example.com", 4, "cname"), dnsttDomain("a.example.com")}); err != nil {
		t.Fatal(err)
	}
	if ts := pl.currentTunnels(); !slices.Equal(ts.names, []string{"a.example.com", "b.example.com"}) {
		t.Errorf("ids %q, want a.example.com then b.example.com", ts.names)
	}
	pl.handleIP(qa, 0, now+5*sec)
	pl.handleIP(qb2, 0, now+5*sec)
	pl.handleIP(qb4, 0, now+5*sec)
	check("a back, b's settings changed", scrape(), map[string]float64{
		`dnstt_queries_total{domain="a.example.com"}`:                                                                 2,
		`dnstt_sessions_total{domain="a.example.com"}`:                                                                2,
		`dnstt_active_clients{domain="a.example.com"}`:                                                                1,
		`dnstt_queries_total{domain="b.example.com"}`:                                                                 2,
		`dnstt_exporter_packets_ignored_total{reason="wrong_type"}`:                                                   1,
		`dnstt_exporter_domain_info{domain="a.example.com",protocol="dnstt",record_type="txt",clientid_bytes="8"}`:    1,
		`dnstt_exporter_domain_info{domain="b.example.com",protocol="vaydns",record_type="cname",clientid_bytes="4"}`: 1,
	})

	// The id cap: a set that would need more ids changes nothing.
	var many []tunnelDomain
	for i := range maxDomainIDs - 1 {
		many = append(many, dnsttDomain("n"+strconv.Itoa(i)+".example.org"))
	}
	before := pl.currentTunnels()
	if err := pl.setDomains(many); err != errTooManyDomains {
		t.Errorf("%d new domains: error %v, want errTooManyDomains", len(many), err)
	}
	if pl.currentTunnels() != before {
		t.Errorf("a failed setDomains changed the tunnels in force")
	}
	if err := pl.setDomains(many[:maxDomainIDs-2]); err != nil {
		t.Errorf("%d domains in all: %v", maxDomainIDs, err)
	}

	if !raceEnabled {
		if n := testing.AllocsPerRun(100, func() { pl.handleIP(qa, 0, now+6*sec) }); n != 0 {
			t.Errorf("handleIP after reloads: %v allocs, want 0", n)
		}
	}

	// No domain in force (every tunnel stopped): domain_info is empty,
	// the counters stay, and the exposition is still valid.
	if err := pl.setDomains(nil); err != nil {
		t.Fatal(err)
	}
	text := string(m.appendText(nil))
	e = parseExposition(t, text)
	if e.has("dnstt_exporter_domain_info") || e[`dnstt_queries_total{domain="a.example.com"}`] < 2 ||
		e[`dnstt_exporter_config_reload_failures_total`] != 3 {
		t.Errorf("after the last domain went: domain_info %v, queries of a.example.com %v, reload failures %v",
			e.has("dnstt_exporter_domain_info"), e[`dnstt_queries_total{domain="a.example.com"}`], e[`dnstt_exporter_config_reload_failures_total`])
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		skipUnlessCI(t, "promtool not installed (apt-get install prometheus)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s\ninput:\n%s", err, out, text)
	}
}

// TestLiveDnstmReload runs the program on a dnstm host's config and
// switches the active tunnel with SIGHUP while traffic flows (single
// mode, from a dnstt tunnel on t.example.com to one on u.example.com),
// then changes the VayDNS settings of the active tunnel, then breaks the
// file: the counts and domain_info follow every good reload, the removed
// domain's sessions expire and its counters stay, a bad file keeps the
// domains and counts as a failed reload, and no key reaches the log (at
// debug level) or the metrics.
func TestLiveDnstmReload(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t, "dnstm")
	startResponder(t, ns, "127.0.0.1:53")
	path := filepath.Join(t.TempDir(), "config.json")
	tunnels := func(vaySize int) []map[string]any {
		return []map[string]any{
			dnstmTestTunnel("ta", dnstmDNSTT, "t.example.com", yes, nil),
			dnstmTestTunnel("tu", dnstmDNSTT, "u.example.com", no, nil),
			dnstmTestTunnel("vu", dnstmVayDNS, "u.example.com", no, map[string]any{"clientid_size": vaySize}),
			dnstmTestTunnel("slip", dnstmSlipstream, "s.example.com", nil, nil),
		}
	}
	// write replaces the file in place, as dnstm's Save does.
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(dnstmTestConfig(t, "single", "ta", tunnels(2)...))
	const listen = "127.0.0.1:9713"
	cmd := exec.Command("ip", "netns", "exec", ns, testBinary, "-dnstm.config", path, "-dnstt.window", "2s",
		"-capture.interface", "lo", "-web.listen-address", listen, "-log.level", "debug")
	stderr := &geoLogBuffer{}
	cmd.Stderr = stderr
	done := startCommand(t, cmd)

	live := &liveExporter{t: t, ns: ns, listen: listen, done: done, stderr: stderr}
	scrapeNow, waitFor := live.scrape, live.waitFor
	send := func(domain string, cid byte, n int, firstID uint16) {
		t.Helper()
		if err := sendQueriesTo(ns, "127.0.1.5", domain, [8]byte{cid, 1, 2, 3, 4, 5, 6, 7}, n, firstID); err != nil {
			t.Fatal(err)
		}
	}
	queries := func(domain string) float64 { return live.s[`dnstt_queries_total{domain="`+domain+`"}`] }
	info := func(domain, protocol, size string) string {
		return `dnstt_exporter_domain_info{domain="` + domain + `",protocol="` + protocol + `",record_type="txt",clientid_bytes="` + size + `"}`
	}
	sighup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// settle waits out the ring's block timeout, scrapes and checks want.
	settle := func(step string, want map[string]float64, absent ...string) {
		t.Helper()
		time.Sleep(3 * ringRetireTimeoutMs * time.Millisecond)
		if err := scrapeNow(); err != nil {
			t.Fatal(err)
		}
		for k, w := range want {
			if got, ok := live.s[k]; !ok || got != w {
				t.Errorf("%s: %s = %v (present %v), want %v", step, k, got, ok, w)
			}
		}
		for _, k := range absent {
			if _, ok := live.s[k]; ok {
				t.Errorf("%s: %s present", step, k)
			}
		}
		if strings.Contains(string(live.body), fakeKey) {
			t.Errorf("%s: a key in the metrics", step)
		}
	}

	waitFor("the first scrape", func() bool { return true })
	send("t.example.com", 0xa1, 5, 100)
	waitFor("t.example.com counted", func() bool { return queries("t.example.com") == 5 })
	settle("ta active", map[string]float64{
		`dnstt_queries_total{domain="t.example.com"}`:               5,
		info("t.example.com", "dnstt", "8"):                         1,
		`dnstt_exporter_config_reload_failures_total`:               0,
		`dnstt_exporter_packets_ignored_total{reason="not_tunnel"}`: 0,
	}, `dnstt_queries_total{domain="u.example.com"}`)

	// router switch: the old tunnel is disabled, the new one active; the
	// old domain's traffic keeps flowing while the signal lands.
	bg := make(chan error, 1)
	go func() { bg <- sendQueriesTo(ns, "127.0.2.5", "t.example.com", [8]byte{0xb2, 1}, 40, 1000) }()
	time.Sleep(100 * time.Millisecond)
	sw := tunnels(2)
	sw[0]["enabled"], sw[1]["enabled"] = false, true
	write(dnstmTestConfig(t, "single", "tu", sw...))
	sighup()
	waitFor("the switch", func() bool { return live.s[info("u.example.com", "dnstt", "8")] == 1 })
	if err := <-bg; err != nil {
		t.Fatal(err)
	}
	settle("switched", nil)
	frozen := queries("t.example.com")
	if frozen < 5 || frozen > 45 {
		t.Fatalf("t.example.com counted %v queries across the switch, want 5 to 45", frozen)
	}
	send("t.example.com", 0xa1, 3, 200)
	send("u.example.com", 0xc3, 7, 300)
	waitFor("u.example.com counted", func() bool { return queries("u.example.com") == 7 })
	// The window is 2 s: t.example.com's sessions expire; its counters stay.
	waitFor("t.example.com's sessions expired", func() bool {
		return live.s[`dnstt_active_clients{domain="t.example.com"}`] == 0 && live.s[`dnstt_active_clients{domain="u.example.com"}`] == 0
	})
	settle("tu active", map[string]float64{
		`dnstt_queries_total{domain="t.example.com"}`:  frozen,
		`dnstt_queries_total{domain="u.example.com"}`:  7,
		`dnstt_sessions_total{domain="u.example.com"}`: 1,
		`dnstt_exporter_config_reload_failures_total`:  0,
	}, info("t.example.com", "dnstt", "8"))
	// Every query to t.example.com after the switch, and its answer, is
	// not_tunnel now; so is the answer to a query counted just before it.
	if n, want := live.s[`dnstt_exporter_packets_ignored_total{reason="not_tunnel"}`], 2*(48-frozen); n != want && n != want+1 {
		t.Errorf("not_tunnel = %v, want %v or one more", n, want)
	}

	// Switch to the VayDNS tunnel on the same domain, ClientID size 4:
	// the domain keeps its counters, dnstt-shaped queries still pass
	// VayDNS's rules (TXT, at least 8 base32 characters).
	for _, size := range []int{4, 5} {
		sw = tunnels(size)
		sw[0]["enabled"], sw[2]["enabled"] = false, true
		write(dnstmTestConfig(t, "single", "vu", sw...))
		sighup()
		waitFor("vaydns size "+strconv.Itoa(size), func() bool { return live.s[info("u.example.com", "vaydns", strconv.Itoa(size))] == 1 })
	}
	send("u.example.com", 0xd4, 4, 400)
	waitFor("u.example.com as VayDNS", func() bool { return queries("u.example.com") == 11 })
	settle("vu active", map[string]float64{
		`dnstt_queries_total{domain="u.example.com"}`:  11,
		`dnstt_sessions_total{domain="u.example.com"}`: 2,
		info("u.example.com", "vaydns", "5"):           1,
	}, info("u.example.com", "dnstt", "8"), info("u.example.com", "vaydns", "4"))

	// A file dnstm is half-way through writing: the reload fails, the
	// domains stay.
	b := dnstmTestConfig(t, "multi", "", tunnels(2)...)
	write(b[:bytes.Index(b, []byte(fakeKey))+len(fakeKey)+3])
	sighup()
	waitFor("the failed reload", func() bool { return live.s[`dnstt_exporter_config_reload_failures_total`] == 1 })
	send("u.example.com", 0xd4, 2, 500)
	waitFor("u.example.com after the failed reload", func() bool { return queries("u.example.com") == 13 })
	settle("bad file", map[string]float64{info("u.example.com", "vaydns", "5"): 1})

	log := stderr.String()
	for _, want := range []string{"dnstm config reloaded", "dnstm config reload failed"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, fakeKey) {
		t.Errorf("a key in the log:\n%s", log)
	}
	stopCommand(t, cmd.Process, done, stderr, 10*time.Second)
}

// FuzzParseDnstmConfig: any file, from the fixtures on, parses without a
// panic into valid, distinct domains, or fails with one line
// (TestDnstmErrorsHideValues checks what errors leave out).
func FuzzParseDnstmConfig(f *testing.F) {
	for _, name := range []string{"single-dnstt.json", "single-vaydns.json", "multi.json", "malformed.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/dnstm", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"tunnels":[{"tag":"a","transport":"vaydns","domain":"a.example.com","vaydns":{"clientid_size":4,"record_type":"cname"}}],"route":{"mode":"multi"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseDnstmConfig(b)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error %q", msg)
			}
			return
		}
		if len(got.tags) != len(got.domains) {
			t.Fatalf("%d tags for %d domains", len(got.tags), len(got.domains))
		}
		for i, d := range got.domains {
			if n, err := parseDomain(d.name); err != nil || n != d.name || indexDomain(got.domains[:i], d.name) >= 0 ||
				d.idLen < minVayDNSIDLen || d.idLen > maxVayDNSIDLen || recordTypeName(d.qtype) == strconv.Itoa(int(d.qtype)) {
				t.Fatalf("domain %+v (%v)", d, err)
			}
		}
	})
}

// TestReloadDnstm runs reloadDnstm, the SIGHUP handler's part for
// -dnstm.config, over a file that changes: a good change applies, a
// conflict with a flag, a broken file, a missing file and a file needing
// too many domain ids each keep the domains in force, count one failure
// and log one line without a key, at debug level.
func TestReloadDnstm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", dnstmDNSTT, "a.example.com", nil, nil)))
	cfg := parseOwnConfig(t, "-dnstm.config", path, "-vaydns.domain", "f.example.net:clientid-size=3", "-log.level", "debug")
	pl := newPipeline(cfg, nil, false)
	var failures atomic.Uint64
	logs := &geoLogBuffer{}
	log := newLogger(logs, cfg)
	inForce := func() []tunnelDomain { return pl.currentTunnels().domains }
	flagDomain := vay(t, "f.example.net", 3, "txt")

	many := []map[string]any{}
	for i := range maxDomainIDs {
		many = append(many, dnstmTestTunnel("m"+strconv.Itoa(i), dnstmDNSTT, "m"+strconv.Itoa(i)+".example.org", nil, nil))
	}
	for _, step := range []struct {
		name     string
		file     []byte // nil: remove the file
		want     []tunnelDomain
		failures uint64
		log      string
	}{
		{"switch", dnstmTestConfig(t, "single", "b", dnstmTestTunnel("a", dnstmDNSTT, "a.example.com", nil, nil),
			dnstmTestTunnel("b", dnstmVayDNS, "b.example.com", nil, map[string]any{"record_type": "aaaa"})),
			[]tunnelDomain{flagDomain, vay(t, "b.example.com", 2, "aaaa")}, 0, "dnstm config reloaded"},
		{"conflict with a flag", dnstmTestConfig(t, "multi", "", dnstmTestTunnel("f", dnstmVayDNS, "f.example.net", nil, map[string]any{"clientid_size": 3})),
			[]tunnelDomain{flagDomain, vay(t, "b.example.com", 2, "aaaa")}, 1,
			`tunnel \"f\": domain \"f.example.net\" is also given as -vaydns.domain`},
		{"half written", dnstmTestConfig(t, "multi", "", many...)[:300],
			[]tunnelDomain{flagDomain, vay(t, "b.example.com", 2, "aaaa")}, 2, "not valid JSON at byte offset 300"},
		{"too many domains", dnstmTestConfig(t, "multi", "", many...),
			[]tunnelDomain{flagDomain, vay(t, "b.example.com", 2, "aaaa")}, 3, "distinct tunnel domains since start"},
		{"missing", nil, []tunnelDomain{flagDomain, vay(t, "b.example.com", 2, "aaaa")}, 4, "no such file or directory"},
		{"nothing runs", dnstmTestConfig(t, "single", ""), []tunnelDomain{flagDomain}, 4, "dnstm config reloaded"},
		{"back", dnstmTestConfig(t, "multi", "", dnstmTestTunnel("a", dnstmDNSTT, "a.example.com", nil, nil),
			dnstmTestTunnel("s", dnstmSlipstream, "s.example.com", nil, nil)),
			[]tunnelDomain{flagDomain, dnsttDomain("a.example.com")}, 4, "s (slipstream)"},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.file == nil {
				os.Remove(path)
			} else {
				write(step.file)
			}
			before := len(logs.String())
			reloadDnstm(cfg, pl, &failures, log)
			line := logs.String()[before:]
			if !slices.Equal(inForce(), step.want) || failures.Load() != step.failures || !strings.Contains(line, step.log) {
				t.Errorf("domains %+v, failures %d, log %q; want %+v, %d, %q", inForce(), failures.Load(), line, step.want, step.failures, step.log)
			}
			if strings.Contains(line, fakeKey) {
				t.Errorf("a key in the log: %q", line)
			}
		})
	}
	if ts := pl.currentTunnels(); !slices.Equal(ts.names, []string{"f.example.net", "a.example.com", "b.example.com"}) {
		t.Errorf("domain ids %q", ts.names)
	}
}
