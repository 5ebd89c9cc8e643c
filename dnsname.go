package main

import "errors"

// domainTable holds the configured tunnel domains, lower case, and matches
// question names against them.
type domainTable struct {
	names []string // as configured, normalised; index = dnsttPacket.domain
}

// newDomainTable builds a table from normalised domains.
func newDomainTable(names []string) domainTable {
	return domainTable{names: names}
}

// parseDomain validates a -dnstt.domain value and returns it normalised:
// lower case, without a trailing dot.
func parseDomain(s string) (string, error) {
	return "", errors.New("SKELETON") // replaced by the decoder work
}
