module github.com/dnstt-exporter/dnstt_exporter/tools/bench

go 1.26.0

require (
	github.com/google/gopacket v1.1.19
	github.com/miekg/dns v1.1.73
	golang.org/x/net v0.62.0
)

require golang.org/x/sys v0.49.0 // indirect
