// dnstt_exporter is a Prometheus exporter for dnstt DNS tunnel servers,
// and for VayDNS, the dnstt fork that dnstm installs.
//
// It runs beside dnstt-server, watches the host's DNS traffic passively
// through a Linux AF_PACKET socket (or reads a pcap/pcapng file), decodes the
// session ID (ClientID) from each query name and exports how many tunnel
// sessions are active, the peak, queries, bytes in and out, and sessions
// started, optionally broken down by the resolver's country and ASN. For
// session insight and server health (SPEC section 7) it also exports
// session duration and bytes per session (histograms), tunnel time,
// responses by RCODE, response latency, unanswered queries and active
// resolvers. The tunnel domains come from flags, each VayDNS domain with
// its own ClientID size and record type, or from dnstm's config.json
// (-dnstm.config), re-read on SIGHUP.
// Metrics are served at http://127.0.0.1:9713/metrics by default.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Exit codes (SPEC section 6).
const (
	exitOK      = 0
	exitRuntime = 1 // the capture, the capture file or the listener failed
	exitUsage   = 2 // a flag or a GeoIP database is wrong
)

// programName is the name in usage, version and log output.
const programName = "dnstt_exporter"

// version can be set at build time with
// -ldflags "-X main.version=1.2.3"; otherwise the module version is used.
var version = ""

// revision can be set at build time with -ldflags "-X main.revision=<commit>"
// (scripts/release.sh does); otherwise the go command's VCS stamp is used.
var revision = ""

// Flag defaults and limits. The limits of -capture.buffer-size and
// -geoip.max-label-sets live with the code they protect: ring.go's
// checkRingBufferSize and geo.go's checkMaxLabelSets, which validate calls.
const (
	defaultPort          = 53
	defaultWindow        = 30 * time.Second
	minWindow            = time.Second // sweeps run every 500 ms and SPEC section 4 allows 1 s of slack
	maxWindow            = 24 * time.Hour
	defaultBufferSize    = 4 << 20 // per socket: 7,000 full-snap frames, 70 ms of 100,000 packets/s (README: How it captures)
	defaultSessionsMax   = 1000000
	maxSessionsMax       = 1 << 30
	defaultPendingMax    = 65536 // about 1.4 MB; at 0.5 s typical latency, 130,000 queries/s
	defaultResolversMax  = 65536 // about 2 MB
	maxTableMax          = 1 << 26
	defaultListenAddress = "127.0.0.1:9713"
	defaultTelemetryPath = "/metrics"
	defaultMaxRequests   = 40
	maxMaxRequests       = 10000
	// defaultMaxConnections bounds open HTTP connections: each costs the
	// server a goroutine and buffers until a timeout closes it.
	defaultMaxConnections = 64
	maxMaxConnections     = 10000
)

// shutdownTimeout bounds the graceful HTTP shutdown on SIGINT/SIGTERM.
const shutdownTimeout = 5 * time.Second

// config is the validated command line.
type config struct {
	// domains are -dnstt.domain, then -vaydns.domain with the -vaydns.*
	// settings, then the domains of -dnstm.config; names normalised by
	// parseDomain, index = domain id at start.
	domains []tunnelDomain
	// flagDomains are the domains of -dnstt.domain and -vaydns.domain:
	// the first len(flagDomains) of domains. A reload keeps them.
	flagDomains   []tunnelDomain
	dnstmConfig   string        // -dnstm.config; "" = none
	dnstmNotes    []string      // the dnstm tunnels not counted at start (slipstream), for one log line
	port          uint16        // -dnstt.port
	window        time.Duration // -dnstt.window
	interfaces    []string      // -capture.interface; empty = all
	bufferSize    int           // -capture.buffer-size, bytes
	file          string        // -capture.file; "" = live capture, "-" = stdin
	sessionsMax   int           // -sessions.max
	pendingMax    int           // -latency.max-pending; 0 = no latency matching
	resolversMax  int           // -resolvers.max; 0 = no resolver tracking
	geo           geoConfig     // -geoip.*
	listenAddress string        // -web.listen-address
	telemetryPath string        // -web.telemetry-path
	tlsCertFile   string        // -web.tls-cert-file
	tlsKeyFile    string        // -web.tls-key-file
	basicAuthFile string        // -web.basic-auth-file
	bearerFile    string        // -web.bearer-token-file
	maxRequests   int           // -web.max-requests
	maxConns      int           // -web.max-connections
	logLevel      slog.Level    // -log.level
	logJSON       bool          // -log.format json

	tlsCert *tls.Certificate // loaded from tlsCertFile/tlsKeyFile; nil = plain HTTP
	auth    *authenticator   // loaded from the auth files; nil = no authentication
	limits  serverLimits
}

// usageError is a flag error: exit code 2.
type usageError struct{ err error }

// Error returns the message of the wrapped error.
func (e *usageError) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a *usageError.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// stringList is a repeatable string flag.
type stringList []string

// String joins the values with commas (flag.Value).
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set appends a value (flag.Value).
func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// byteSize is a size flag: a number of bytes with an optional binary
// suffix (KiB, MiB, GiB; K, M, G mean the same).
type byteSize int

// String formats the size with a binary suffix (flag.Value).
func (b *byteSize) String() string { return formatByteSize(int(*b)) }

// Set parses a size (flag.Value).
func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// byteSuffixes are the multipliers parseByteSize accepts, longest first.
var byteSuffixes = []struct {
	suffix string
	mul    int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// parseByteSize parses "4194304", "4MiB", "512KiB", "1G".
func parseByteSize(s string) (int, error) {
	num, mul := strings.TrimSpace(s), int64(1)
	for _, u := range byteSuffixes {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mul = strings.TrimSpace(rest), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a number of bytes, optionally with a KiB, MiB or GiB suffix")
	}
	if n > math.MaxInt32/mul {
		return 0, errors.New("too large")
	}
	return int(n * mul), nil
}

// formatByteSize writes n with the largest binary suffix that divides it.
func formatByteSize(n int) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}

// flagValues are the raw flag values, before validation.
type flagValues struct {
	domains, interfaces            stringList
	vaydnsDomains                  stringList
	vaydnsIDSize                   int
	vaydnsRecordType               string
	dnstmConfig                    string
	port                           uint
	window                         time.Duration
	bufferSize                     byteSize
	file                           string
	sessionsMax                    int
	pendingMax, resolversMax       int
	countryDB, asnDB               string
	maxLabelSets                   int
	listenAddress, telemetryPath   string
	tlsCertFile, tlsKeyFile        string
	basicAuthFile, bearerTokenFile string
	maxRequests, maxConnections    int
	logLevel, logFormat            string
	showVersion                    bool
}

// newFlagSet defines every flag on a private FlagSet that reports errors
// instead of exiting.
func newFlagSet(v *flagValues) *flag.FlagSet {
	fs := flag.NewFlagSet(programName, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed as one line by run
	v.bufferSize = defaultBufferSize
	fs.Var(&v.domains, "dnstt.domain", "dnstt tunnel `domain` to watch, e.g. t.example.com (repeat for several tunnels; at least one -dnstt.domain, -vaydns.domain or -dnstm.config)")
	fs.Var(&v.vaydnsDomains, "vaydns.domain", "VayDNS tunnel `domain` in VayDNS's default format (repeatable; a VayDNS server run with -dnstt-compat is a -dnstt.domain); "+
		"DOMAIN:clientid-size=N,record-type=TYPE gives this domain its own settings, either or both")
	fs.IntVar(&v.vaydnsIDSize, "vaydns.clientid-size", defaultVayDNSIDLen, "ClientID `bytes` of the -vaydns.domain servers, as their -clientid-size (1 to 8), unless a domain gives its own")
	fs.StringVar(&v.vaydnsRecordType, "vaydns.record-type", "txt", "query `type` of the -vaydns.domain servers, as their -record-type: txt, null, cname, a, aaaa, mx, ns, srv or caa; unless a domain gives its own")
	fs.StringVar(&v.dnstmConfig, "dnstm.config", "", "read the tunnel domains from dnstm's config.json at this `path` (e.g. /etc/dnstm/config.json, or ${CREDENTIALS_DIRECTORY}/dnstm-config with systemd's LoadCredential=); SIGHUP re-reads it")
	fs.UintVar(&v.port, "dnstt.port", defaultPort, "UDP `port` the dnstt server answers on (the port on the wire, before any iptables redirect)")
	fs.DurationVar(&v.window, "dnstt.window", defaultWindow, "a session is active while its latest query is younger than this (1s to 24h)")
	fs.Var(&v.interfaces, "capture.interface", "network `interface` to capture on (repeatable; default: all interfaces)")
	fs.Var(&v.bufferSize, "capture.buffer-size", "kernel capture ring `size` in bytes; KiB, MiB, GiB suffixes accepted ("+
		formatByteSize(ringMinBufferSize)+" to "+formatByteSize(ringMaxBufferSize)+")")
	fs.StringVar(&v.file, "capture.file", "", "read this pcap or pcapng `file` (\"-\" for standard input) instead of capturing, print the metrics to standard output and exit")
	fs.IntVar(&v.sessionsMax, "sessions.max", defaultSessionsMax, "most sessions tracked at once; queries of further sessions still count in queries and bytes")
	fs.IntVar(&v.pendingMax, "latency.max-pending", defaultPendingMax, "most queries waiting for their response, for the response latency and unanswered queries (0 turns both off)")
	fs.IntVar(&v.resolversMax, "resolvers.max", defaultResolversMax, "most (resolver address, domain) pairs tracked for dnstt_active_resolvers (0 turns it off)")
	fs.StringVar(&v.countryDB, "geoip.country-database", "", "MaxMind-format country database (`path` to .mmdb): adds the country label of the resolver")
	fs.StringVar(&v.asnDB, "geoip.asn-database", "", "MaxMind-format ASN database (`path` to .mmdb): adds the asn label of the resolver")
	fs.IntVar(&v.maxLabelSets, "geoip.max-label-sets", geoDefaultMaxLabelSets, "most distinct (country, asn) label combinations, ZZ/0 included, with an ASN database; further ones are counted under their country with asn 0 (room for each country's asn 0 is kept apart)")
	fs.StringVar(&v.listenAddress, "web.listen-address", defaultListenAddress, "`address` to serve metrics on; the data describe who uses a tunnel: keep it private or use TLS and authentication")
	fs.StringVar(&v.telemetryPath, "web.telemetry-path", defaultTelemetryPath, "URL `path` of the metrics")
	fs.StringVar(&v.tlsCertFile, "web.tls-cert-file", "", "serve HTTPS with this PEM certificate (chain) `file`; needs -web.tls-key-file")
	fs.StringVar(&v.tlsKeyFile, "web.tls-key-file", "", "PEM private key `file` for -web.tls-cert-file")
	fs.StringVar(&v.basicAuthFile, "web.basic-auth-file", "", "require HTTP basic authentication: `file` of user:password lines (keep it secret, mode 0600)")
	fs.StringVar(&v.bearerTokenFile, "web.bearer-token-file", "", "require an Authorization: Bearer token read from this `file` (keep it secret, mode 0600)")
	fs.IntVar(&v.maxRequests, "web.max-requests", defaultMaxRequests, "most concurrent HTTP requests; further ones get 503")
	fs.IntVar(&v.maxConnections, "web.max-connections", defaultMaxConnections, "most open HTTP connections; further ones are closed as soon as they are accepted")
	fs.StringVar(&v.logLevel, "log.level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&v.logFormat, "log.format", "text", "log `format`: text or json")
	fs.BoolVar(&v.showVersion, "version", false, "print the version and exit")
	return fs
}

// usageText is the -h output.
func usageText(fs *flag.FlagSet) string {
	var b bytes.Buffer
	b.WriteString(`Usage: dnstt_exporter -dnstt.domain DOMAIN [flags]
       dnstt_exporter -vaydns.domain DOMAIN[:clientid-size=N,record-type=TYPE] [flags]
       dnstt_exporter -dnstm.config /etc/dnstm/config.json [flags]

dnstt_exporter watches the DNS traffic of a dnstt or VayDNS server passively
and exports tunnel usage (active sessions, peak, queries, bytes, sessions
started, tunnel time, session duration and bytes) and server health
(responses by RCODE, response latency, unanswered queries, active resolvers)
as Prometheus metrics, by default at http://127.0.0.1:9713/metrics.
Both kinds of domain may be given on one host, each VayDNS domain with its own
ClientID size and record type; on a dnstm host -dnstm.config reads them all
from dnstm's config.json. Live capture needs CAP_NET_RAW.
With -capture.file it reads a pcap or pcapng file instead, prints the metrics
to standard output and exits.

Flags (two dashes work too):
`)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	b.WriteString(`
Signals: SIGINT and SIGTERM stop (in file mode: print what was read so far);
SIGHUP reloads the GeoIP databases and the -dnstm.config file.
Exit codes: 0 success, 1 capture, capture-file or listener error, 2 flag,
GeoIP database or dnstm config error.
`)
	return b.String()
}

// parseAction is what the command line asks for besides running.
type parseAction uint8

const (
	actionRun parseAction = iota
	actionHelp
	actionVersion
)

// parseConfig parses and validates args, reading the TLS and
// authentication files, and returns the config. Its errors are one line
// naming the flag; all are exit code 2.
func parseConfig(args []string) (*config, parseAction, string, error) {
	var v flagValues
	fs := newFlagSet(&v)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, actionHelp, usageText(fs), nil
		}
		return nil, actionRun, "", &usageError{err}
	}
	if v.showVersion {
		return nil, actionVersion, "", nil
	}
	if fs.NArg() > 0 {
		return nil, actionRun, "", usagef("unexpected argument %q (flags take values as -flag value; see -h)", fs.Arg(0))
	}
	cfg, err := validate(&v)
	return cfg, actionRun, "", err
}

// validate turns raw flag values into a config.
func validate(v *flagValues) (*config, error) {
	cfg := &config{
		window:        v.window,
		bufferSize:    int(v.bufferSize),
		file:          v.file,
		sessionsMax:   v.sessionsMax,
		pendingMax:    v.pendingMax,
		resolversMax:  v.resolversMax,
		listenAddress: v.listenAddress,
		telemetryPath: v.telemetryPath,
		tlsCertFile:   v.tlsCertFile,
		tlsKeyFile:    v.tlsKeyFile,
		basicAuthFile: v.basicAuthFile,
		bearerFile:    v.bearerTokenFile,
		maxRequests:   v.maxRequests,
		maxConns:      v.maxConnections,
		limits:        defaultServerLimits,
		geo: geoConfig{
			countryPath:  v.countryDB,
			asnPath:      v.asnDB,
			maxLabelSets: v.maxLabelSets,
		},
	}
	if len(v.domains)+len(v.vaydnsDomains) == 0 && v.dnstmConfig == "" {
		return nil, usagef("-dnstt.domain: missing: name at least one tunnel domain, or -vaydns.domain, or give -dnstm.config (see -h)")
	}
	for _, s := range v.domains {
		d, err := parseDomain(s)
		if err != nil {
			return nil, usagef("-dnstt.domain: %w", err)
		}
		if indexDomain(cfg.domains, d) >= 0 {
			return nil, usagef("-dnstt.domain %q: given twice", s)
		}
		cfg.domains = append(cfg.domains, dnsttDomain(d))
	}
	if v.vaydnsIDSize < minVayDNSIDLen || v.vaydnsIDSize > maxVayDNSIDLen {
		return nil, usagef("-vaydns.clientid-size %d: want %d to %d", v.vaydnsIDSize, minVayDNSIDLen, maxVayDNSIDLen)
	}
	if _, err := parseRecordType(v.vaydnsRecordType); err != nil {
		return nil, usagef("-vaydns.record-type %q: want one of %s", v.vaydnsRecordType, recordTypeList())
	}
	for _, s := range v.vaydnsDomains {
		d, err := parseVayDNSDomain(s, v.vaydnsIDSize, v.vaydnsRecordType)
		if err != nil {
			if strings.Contains(s, ":") {
				return nil, usagef("-vaydns.domain %q: %w", s, err)
			}
			return nil, usagef("-vaydns.domain: %w", err)
		}
		if i := indexDomain(cfg.domains, d.name); i >= 0 {
			if cfg.domains[i].protocol == protocolDNSTT {
				return nil, usagef("-vaydns.domain %q: also given as -dnstt.domain", s)
			}
			return nil, usagef("-vaydns.domain %q: given twice", s)
		}
		cfg.domains = append(cfg.domains, d)
	}
	cfg.flagDomains = slices.Clip(cfg.domains)
	if v.dnstmConfig != "" {
		cfg.dnstmConfig = v.dnstmConfig
		domains, notes, err := cfg.loadDnstm()
		if err != nil {
			return nil, &usageError{err}
		}
		if len(domains) == 0 {
			return nil, usagef("-dnstm.config %q: no dnstt or VayDNS tunnel to count (single mode: route.active's; multi mode: every enabled one), and no -dnstt.domain or -vaydns.domain", cfg.dnstmConfig)
		}
		cfg.domains, cfg.dnstmNotes = domains, notes
	}
	if len(cfg.domains) > maxDomainIDs {
		return nil, usagef("%d tunnel domains: at most %d", len(cfg.domains), maxDomainIDs)
	}
	if v.port < 1 || v.port > math.MaxUint16 {
		return nil, usagef("-dnstt.port %d: want 1 to 65535", v.port)
	}
	cfg.port = uint16(v.port)
	if v.window < minWindow || v.window > maxWindow {
		return nil, usagef("-dnstt.window %s: want 1s to 24h", v.window)
	}
	for i, s := range v.interfaces {
		if s == "" || len(s) >= syscall.IFNAMSIZ || strings.ContainsAny(s, "/ \t\n") {
			return nil, usagef("-capture.interface %q: not an interface name", s)
		}
		for _, o := range v.interfaces[:i] {
			if o == s {
				return nil, usagef("-capture.interface %q: given twice", s)
			}
		}
	}
	cfg.interfaces = v.interfaces
	if err := checkRingBufferSize(cfg.bufferSize, os.Getpagesize()); err != nil {
		return nil, usagef("-capture.buffer-size %s: %w", formatByteSize(cfg.bufferSize), err)
	}
	if cfg.file != "" && len(cfg.interfaces) > 0 {
		return nil, usagef("-capture.file and -capture.interface: give one or the other")
	}
	if cfg.sessionsMax < 1 || cfg.sessionsMax > maxSessionsMax {
		return nil, usagef("-sessions.max %d: want 1 to %d", cfg.sessionsMax, maxSessionsMax)
	}
	if cfg.pendingMax < 0 || cfg.pendingMax > maxTableMax {
		return nil, usagef("-latency.max-pending %d: want 0 to %d", cfg.pendingMax, maxTableMax)
	}
	if cfg.resolversMax < 0 || cfg.resolversMax > maxTableMax {
		return nil, usagef("-resolvers.max %d: want 0 to %d", cfg.resolversMax, maxTableMax)
	}
	if err := checkMaxLabelSets(v.maxLabelSets); err != nil {
		return nil, usagef("-geoip.max-label-sets %d: %w", v.maxLabelSets, err)
	}
	if err := checkListenAddress(cfg.listenAddress); err != nil {
		return nil, usagef("-web.listen-address %q: %w", cfg.listenAddress, err)
	}
	if err := checkTelemetryPath(cfg.telemetryPath); err != nil {
		return nil, usagef("-web.telemetry-path %q: %w", cfg.telemetryPath, err)
	}
	if cfg.maxRequests < 1 || cfg.maxRequests > maxMaxRequests {
		return nil, usagef("-web.max-requests %d: want 1 to %d", cfg.maxRequests, maxMaxRequests)
	}
	if cfg.maxConns < 1 || cfg.maxConns > maxMaxConnections {
		return nil, usagef("-web.max-connections %d: want 1 to %d", cfg.maxConns, maxMaxConnections)
	}
	switch strings.ToLower(v.logLevel) {
	case "debug":
		cfg.logLevel = slog.LevelDebug
	case "info":
		cfg.logLevel = slog.LevelInfo
	case "warn", "warning":
		cfg.logLevel = slog.LevelWarn
	case "error":
		cfg.logLevel = slog.LevelError
	default:
		return nil, usagef("-log.level %q: want debug, info, warn or error", v.logLevel)
	}
	switch v.logFormat {
	case "text":
	case "json":
		cfg.logJSON = true
	default:
		return nil, usagef("-log.format %q: want text or json", v.logFormat)
	}
	if (cfg.tlsCertFile == "") != (cfg.tlsKeyFile == "") {
		return nil, usagef("-web.tls-cert-file and -web.tls-key-file: give both or neither")
	}
	if cfg.tlsCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCertFile, cfg.tlsKeyFile)
		if err != nil {
			return nil, usagef("-web.tls-cert-file %q, -web.tls-key-file %q: %w", cfg.tlsCertFile, cfg.tlsKeyFile, err)
		}
		cfg.tlsCert = &cert
	}
	auth, err := loadAuthenticator(cfg.basicAuthFile, cfg.bearerFile)
	if err != nil {
		return nil, &usageError{err}
	}
	cfg.auth = auth
	return cfg, nil
}

// checkListenAddress accepts host:port with a decimal port 0 to 65535 (0
// picks a free port) and a host that is empty, an IP address (with a zone
// for IPv6) or a host name. Whether the address can be bound is found out
// by binding it: that is a runtime error, exit code 1, not a flag error.
func checkListenAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:9713 or :9713")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.ContainsAny(host, ":%") {
		return fmt.Errorf("host %q: not an IP address", host)
	}
	if _, err := parseDomain(host); err != nil {
		return fmt.Errorf("host %q: not an IP address or host name", host)
	}
	return nil
}

// buildInfo returns the version, VCS revision and Go version of the binary.
func buildInfo() (ver, rev, goVer string) {
	ver, rev, goVer = version, "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				rev = s.Value
			}
		}
	}
	if revision != "" {
		rev = revision
	}
	if ver == "" {
		ver = "devel"
	}
	return ver, rev, goVer
}

// versionLine is the -version output.
func versionLine() string {
	ver, rev, goVer := buildInfo()
	return programName + " version " + ver + " revision " + rev + " goversion " + goVer + "\n"
}

// newLogger returns the process logger: text or JSON on w.
func newLogger(w io.Writer, cfg *config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// main runs the program and exits with its code.
func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// execute runs the program with the given standard streams and returns
// its exit code; tests call it in-process.
func execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, action, usage, err := parseConfig(args)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitUsage
	case action == actionHelp:
		io.WriteString(stdout, usage)
		return exitOK
	case action == actionVersion:
		io.WriteString(stdout, versionLine())
		return exitOK
	}
	log := newLogger(stderr, cfg)
	logDnstmNotes(log, cfg.dnstmNotes)
	if cfg.auth != nil {
		warnReadableSecrets(log, cfg.basicAuthFile, cfg.bearerFile)
	}
	geo, err := openGeo(cfg.geo, log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitUsage
	}
	if cfg.file != "" {
		return runFile(cfg, geo, log, stdin, stdout, stderr)
	}
	return runLive(cfg, geo, log, stderr)
}

// runFile is file mode: read cfg.file, print the file-mode exposition to
// stdout, exit 0; on a file error print one line to stderr and nothing to
// stdout, exit 1. SIGINT/SIGTERM stop reading early; what was read is
// printed.
func runFile(cfg *config, geo *geoResolver, log *slog.Logger, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitRuntime
	}
	// Signals are handled from the start: opening a FIFO blocks until a
	// writer opens it, and a SIGTERM meanwhile must still print the
	// (empty) exposition and exit 0 (SPEC section 6).
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var stopped atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			log.Info("stopping early: printing what was read", "signal", s.String())
			stopped.Store(true)
			close(stop)
		case <-done:
		}
	}()

	var src io.Reader = stdin
	if cfg.file != "-" {
		f, err := openStoppable(cfg.file, stop)
		switch {
		case err == errPcapStopped:
			src = nil
		case err != nil:
			return fail(fmt.Errorf("-capture.file %q: %w", cfg.file, unwrapPathError(err)))
		default:
			defer f.Close()
			src = f
		}
	}
	var r *pcapReader
	var err error
	if src != nil {
		r, err = newPcapReader(cfg.file, src, stop)
	}
	if errors.Is(err, errPcapStopped) {
		r, err = nil, nil // stopped before the header: print the empty exposition
	}
	if err != nil {
		return fail(err)
	}
	if r != nil {
		defer r.close()
	}
	pl := newPipeline(cfg, geo, r != nil && r.multiInterface())
	start := time.Now()
	var last int64
	var records uint64
	if r != nil {
		if last, records, err = replayFile(r, pl, &stopped); err != nil {
			return fail(err)
		}
	}
	log.Debug("capture file read", "file", cfg.file, "records", records, "seconds", time.Since(start).Seconds())
	m := newMetrics(metricsConfig{
		domains:   cfg.domains,
		sessions:  pl.sessions,
		pending:   pl.pending,
		resolvers: pl.resolvers,
		capture:   pl.stats,
		geo:       geo,
		fileMode:  true,
		now:       func() int64 { return last },
	})
	if _, err := stdout.Write(m.appendText(nil)); err != nil {
		return fail(fmt.Errorf("write the metrics to standard output: %w", err))
	}
	return exitOK
}

// openStoppable opens path for reading, in a goroutine: opening a FIFO
// blocks until a writer opens it, and that must not hold up a stop. It
// returns errPcapStopped if stop closes first; the file, if the open
// completes later, is then closed.
func openStoppable(path string, stop <-chan struct{}) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened) // unbuffered: an open completing after a stop sees abandoned
	abandoned := make(chan struct{})
	go func() {
		f, err := os.Open(path)
		select {
		case done <- opened{f, err}:
		case <-abandoned:
			if f != nil {
				f.Close()
			}
		}
	}()
	select {
	case o := <-done:
		return o.f, o.err
	case <-stop:
		close(abandoned)
		return nil, errPcapStopped
	}
}

// runLive is live mode: capture, serve HTTP until SIGINT/SIGTERM.
func runLive(cfg *config, geo *geoResolver, log *slog.Logger, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return code
	}
	// From here on a signal is handled, not fatal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	ln, err := net.Listen("tcp", cfg.listenAddress)
	if err != nil {
		return fail(exitRuntime, fmt.Errorf("-web.listen-address %q: %w", cfg.listenAddress, err))
	}
	web := &httpStats{}
	ln = newConnLimitListener(ln, cfg.maxConns, web)
	clock := newMonoClock()
	capt, err := openLiveCapture(cfg, clock)
	if err != nil {
		ln.Close()
		return fail(exitRuntime, err)
	}
	// Several interfaces (the default is all of them) can show one
	// datagram more than once: SPEC section 3.
	pl := newPipeline(cfg, geo, len(cfg.interfaces) != 1)
	var reloadFailures *atomic.Uint64
	if cfg.dnstmConfig != "" {
		reloadFailures = new(atomic.Uint64)
	}
	m := newMetrics(metricsConfig{
		tunnels:        pl.currentTunnels,
		sessions:       pl.sessions,
		pending:        pl.pending,
		resolvers:      pl.resolvers,
		capture:        pl.stats,
		geo:            geo,
		now:            clock.now,
		reloadFailures: reloadFailures,
		http:           web,
	})
	srv := newHTTPServer(cfg, m, log)
	srv.Handler = countRejected(srv.Handler, web)

	interfaces := "all"
	if len(cfg.interfaces) > 0 {
		interfaces = strings.Join(cfg.interfaces, ",")
	}
	ver, _, _ := buildInfo()
	scheme := "http"
	if cfg.tlsCert != nil {
		scheme = "https"
	}
	log.Info("starting",
		"version", ver,
		"domains", strings.Join(domainNames(cfg.domains), ","),
		"port", cfg.port,
		"interfaces", interfaces,
		"ring_bytes", cfg.bufferSize,
		"geoip", geoDescription(geo),
		"listen", scheme+"://"+ln.Addr().String()+cfg.telemetryPath,
		"auth", cfg.auth.describe(),
	)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	captureErr := make(chan error, 1)
	wg.Go(func() { captureErr <- capt.run(pl, stop) })
	wg.Go(func() { sweepLoop(pl, clock, stop) })
	serveErr := make(chan error, 1)
	go func() {
		if cfg.tlsCert != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()

	code := exitOK
wait:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				reloadGeo(geo, log)
				reloadDnstm(cfg, pl, reloadFailures, log)
				continue
			}
			log.Info("shutting down", "signal", s.String())
			break wait
		case err := <-captureErr:
			if err == nil {
				err = errors.New("capture stopped")
			}
			log.Error("capture failed", "err", err)
			code = exitRuntime
			break wait
		case err := <-serveErr:
			log.Error("HTTP server failed", "err", err)
			code = exitRuntime
			break wait
		}
	}
	close(stop)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	wg.Wait()
	capt.close()
	return code
}

// reloadGeo reloads the GeoIP databases on SIGHUP. reload logs each
// database's outcome itself, a failure once, and keeps a database whose
// new file fails; its error is not logged again here.
func reloadGeo(g *geoResolver, log *slog.Logger) {
	if g == nil {
		log.Info("SIGHUP: no GeoIP database to reload")
		return
	}
	_ = g.reload()
}

// maxDnstmConfigSize bounds what is read of -dnstm.config: dnstm's files
// are a few KiB.
const maxDnstmConfigSize = 16 << 20

// loadDnstm reads -dnstm.config and returns the domains to count, the
// flag domains first, and the tunnels it does not count. A domain of the
// file that is also a flag domain is an error. The file's bytes are
// cleared once parsed: they hold private keys. Errors are one line naming
// the flag and the path, and quote nothing else from the file but what
// parseDnstmConfig's do.
func (cfg *config) loadDnstm() ([]tunnelDomain, []string, error) {
	fail := func(err error) ([]tunnelDomain, []string, error) {
		return nil, nil, fmt.Errorf("-dnstm.config %q: %w", cfg.dnstmConfig, err)
	}
	data, err := readDnstmConfig(cfg.dnstmConfig)
	defer clear(data)
	if err != nil {
		return fail(err)
	}
	tuns, err := parseDnstmConfig(data)
	if err != nil {
		return fail(err)
	}
	domains := slices.Clone(cfg.flagDomains)
	for i, d := range tuns.domains {
		if j := indexDomain(cfg.flagDomains, d.name); j >= 0 {
			flag := "-dnstt.domain"
			if cfg.flagDomains[j].protocol == protocolVayDNS {
				flag = "-vaydns.domain"
			}
			return fail(fmt.Errorf("tunnel %q: domain %q is also given as %s: give it in one place", tuns.tags[i], d.name, flag))
		}
		domains = append(domains, d)
	}
	return domains, tuns.skipped, nil
}

// readDnstmConfig reads the file at path, at most maxDnstmConfigSize
// bytes.
func readDnstmConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDnstmConfigSize+1))
	if err != nil {
		return data, unwrapPathError(err)
	}
	if len(data) > maxDnstmConfigSize {
		return data, errors.New("larger than " + formatByteSize(maxDnstmConfigSize))
	}
	return data, nil
}

// logDnstmNotes logs, in one line, the dnstm tunnels that are not counted.
func logDnstmNotes(log *slog.Logger, notes []string) {
	if len(notes) > 0 {
		log.Info("dnstm tunnels not counted: their transport carries no dnstt or VayDNS ClientID", "tunnels", strings.Join(notes, ", "))
	}
}

// reloadDnstm re-reads -dnstm.config on SIGHUP (SPEC section 8) and makes
// its domains the ones in force. A file that is now bad, or would need
// more domain ids than are left, keeps the domains in force, is logged and
// counts in failures. Sessions of a domain that is gone expire as usual;
// its counters stay.
func reloadDnstm(cfg *config, pl *pipeline, failures *atomic.Uint64, log *slog.Logger) {
	if cfg.dnstmConfig == "" {
		return
	}
	domains, notes, err := cfg.loadDnstm()
	if err == nil && !slices.Equal(domains, pl.currentTunnels().domains) {
		if err = pl.setDomains(domains); err != nil {
			err = fmt.Errorf("-dnstm.config %q: %w", cfg.dnstmConfig, err)
		}
	}
	if err != nil {
		failures.Add(1)
		log.Error("dnstm config reload failed, keeping the tunnel domains in force", "err", err)
		return
	}
	log.Info("dnstm config reloaded", "domains", strings.Join(domainNames(domains), ","))
	if len(domains) == 0 {
		log.Warn("no tunnel domain to count: the dnstm config runs no dnstt or VayDNS tunnel")
	}
	logDnstmNotes(log, notes)
}

// openLiveCapture opens the live capture for cfg on clock, the clock the
// sessions and the sweeper share.
func openLiveCapture(cfg *config, clock monoClock) (*capture, error) {
	return openCapture(captureConfig{
		interfaces: cfg.interfaces,
		bufferSize: cfg.bufferSize,
		port:       cfg.port,
		clock:      clock.now,
	})
}
