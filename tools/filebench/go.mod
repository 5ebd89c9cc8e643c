module github.com/dnstt-exporter/dnstt_exporter/tools/filebench

go 1.26
