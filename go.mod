module github.com/dnstt-exporter/dnstt_exporter

go 1.26.0

require (
	github.com/oschwald/maxminddb-golang/v2 v2.9.0
	golang.org/x/sys v0.50.0
)
