package main

// dnstm's config.json: the tunnel domains a dnstm host serves (SPEC
// section 8). Pure: bytes in, domains out. The file holds the tunnels'
// private keys, so it is decoded into a struct with only the fields
// counting needs, and no error or note ever repeats any other part of it.

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// dnstmFile is the part of dnstm's config.json (github.com/net2share/dnstm,
// internal/config: Config, TunnelConfig, VayDNSConfig, RouteConfig) that
// says which tunnels run and how their clients talk. Every other field,
// the private keys among them, is skipped by the decoder and never stored.
type dnstmFile struct {
	Tunnels []dnstmTunnel `json:"tunnels"`
	Route   struct {
		Mode   string `json:"mode"`   // "single" (also when empty) or "multi"
		Active string `json:"active"` // single mode: the tag of the tunnel that runs
	} `json:"route"`
}

// dnstmTunnel is one entry of tunnels[].
type dnstmTunnel struct {
	Tag       string `json:"tag"`
	Enabled   *bool  `json:"enabled"` // absent or null: enabled (dnstm's IsEnabled)
	Transport string `json:"transport"`
	Domain    string `json:"domain"`
	VayDNS    *struct {
		DnsttCompat  bool   `json:"dnstt_compat"`
		ClientIDSize int    `json:"clientid_size"` // 0: dnstm's default, 2
		RecordType   string `json:"record_type"`   // "": VayDNS's default, txt
	} `json:"vaydns"`
}

// dnstm's transport names (internal/config/tunnel.go) and route modes.
const (
	dnstmDNSTT      = "dnstt"
	dnstmVayDNS     = "vaydns"
	dnstmSlipstream = "slipstream"
	dnstmSingle     = "single"
	dnstmMulti      = "multi"
)

// dnstmTunnels is what a dnstm config says to count.
type dnstmTunnels struct {
	// domains are the counted tunnels' domains, in file order, each once.
	domains []tunnelDomain
	// tags are the tags of domains, index by index (for conflict messages).
	tags []string
	// skipped are the counted tunnels whose transport carries no ClientID
	// (slipstream) or is unknown, as "tag (transport)", for one log line.
	skipped []string
}

// parseDnstmConfig reads the tunnels to count from the contents of a
// dnstm config.json (SPEC section 8): in single mode (route.mode
// "single" or empty, as dnstm reads it) the tunnel route.active names,
// whatever its enabled flag (dnstm's router starts it regardless), and
// none when route.active is empty; in multi mode every enabled tunnel
// (enabled absent means enabled). dnstt, and vaydns with dnstt_compat,
// are dnstt domains; vaydns is a VayDNS domain with clientid_size
// (default 2) and record_type (default txt). A domain twice among the
// counted tunnels with the same settings is counted once; with different
// settings it is an error. The errors quote only tags, domains, modes,
// transports and VayDNS settings, never another value of the file.
func parseDnstmConfig(data []byte) (dnstmTunnels, error) {
	var f dnstmFile
	if err := json.Unmarshal(data, &f); err != nil {
		return dnstmTunnels{}, dnstmJSONError(err)
	}
	var counted []*dnstmTunnel
	switch f.Route.Mode {
	case "", dnstmSingle:
		if f.Route.Active == "" {
			break
		}
		i := indexDnstmTunnel(f.Tunnels, f.Route.Active)
		if i < 0 {
			return dnstmTunnels{}, errors.New("route.active " + strconv.Quote(f.Route.Active) + ": no tunnel has this tag")
		}
		counted = append(counted, &f.Tunnels[i])
	case dnstmMulti:
		for i := range f.Tunnels {
			if t := &f.Tunnels[i]; t.Enabled == nil || *t.Enabled {
				counted = append(counted, t)
			}
		}
	default:
		return dnstmTunnels{}, errors.New("route.mode " + strconv.Quote(f.Route.Mode) + ": want single or multi")
	}

	var out dnstmTunnels
	for _, t := range counted {
		d, count, err := t.domain()
		if err != nil {
			return dnstmTunnels{}, errors.New("tunnel " + strconv.Quote(t.Tag) + ": " + err.Error())
		}
		if !count {
			out.skipped = append(out.skipped, t.Tag+" ("+t.Transport+")")
			continue
		}
		if i := indexDomain(out.domains, d.name); i >= 0 {
			if out.domains[i] != d {
				return dnstmTunnels{}, errors.New("tunnels " + strconv.Quote(out.tags[i]) + " and " + strconv.Quote(t.Tag) +
					": domain " + strconv.Quote(d.name) + " with different settings (" + describeDomain(out.domains[i]) +
					"; " + describeDomain(d) + ")")
			}
			continue
		}
		out.domains = append(out.domains, d)
		out.tags = append(out.tags, t.Tag)
	}
	return out, nil
}

// indexDnstmTunnel returns the index of the first tunnel tagged tag, as
// dnstm's GetTunnelByTag finds it, or -1.
func indexDnstmTunnel(ts []dnstmTunnel, tag string) int {
	for i := range ts {
		if ts[i].Tag == tag {
			return i
		}
	}
	return -1
}

// domain returns the domain t serves with its wire format, and false for
// a transport that is not counted.
func (t *dnstmTunnel) domain() (tunnelDomain, bool, error) {
	switch t.Transport {
	case dnstmDNSTT:
	case dnstmVayDNS:
		size, rt, compat := 0, "", false
		if v := t.VayDNS; v != nil {
			size, rt, compat = v.ClientIDSize, v.RecordType, v.DnsttCompat
		}
		if !compat {
			if size == 0 {
				size = defaultVayDNSIDLen // dnstm's default (ApplyDefaults)
			}
			if rt == "" {
				rt = "txt" // VayDNS's default -record-type
			}
			d, err := newVayDNSDomain(t.Domain, size, rt)
			if err != nil {
				return tunnelDomain{}, false, errors.New("vaydns: " + err.Error())
			}
			return d, true, nil
		}
		// dnstt_compat: dnstt's wire format (SPEC section 2a).
	default:
		return tunnelDomain{}, false, nil
	}
	name, err := parseDomain(t.Domain)
	if err != nil {
		return tunnelDomain{}, false, errors.New(t.Transport + ": " + err.Error())
	}
	return dnsttDomain(name), true, nil
}

// describeDomain spells d's settings as the flags would give them.
func describeDomain(d tunnelDomain) string {
	if d.protocol == protocolDNSTT {
		return "dnstt"
	}
	return "vaydns clientid-size=" + strconv.Itoa(d.idLen) + ",record-type=" + recordTypeName(d.qtype)
}

// dnstmJSONError rewords a decoding error of config.json without any
// text from the file: encoding/json's syntax errors quote the offending
// character and its type errors can quote a number, so only the offset
// and, for a type error, the field's path (from dnstmFile's tags) are kept.
func dnstmJSONError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return errors.New("not valid JSON at byte offset " + strconv.FormatInt(syn.Offset, 10))
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			field = "the top level"
		}
		return errors.New(field + ": wrong JSON type at byte offset " + strconv.FormatInt(typ.Offset, 10) +
			" (want " + jsonTypeName(typ.Type.Kind().String()) + ")")
	}
	return errors.New("not a dnstm configuration")
}

// jsonTypeName names the JSON type that decodes into a Go kind.
func jsonTypeName(kind string) string {
	switch {
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case strings.HasPrefix(kind, "int"):
		return "a whole number"
	case kind == "slice":
		return "an array"
	case kind == "struct", kind == "ptr":
		return "an object"
	}
	return kind
}
