// dnstt_exporter is a Prometheus exporter for dnstt DNS tunnel servers.
//
// It runs beside dnstt-server, watches the host's DNS traffic passively
// through a Linux AF_PACKET socket (or reads a pcap/pcapng file), decodes the
// dnstt session ID (ClientID) from each query name and exports how many
// tunnel sessions are active, the peak, queries, bytes in and out, and
// sessions started, optionally broken down by the resolver's country and ASN.
// Metrics are served at http://127.0.0.1:9713/metrics by default.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
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

// Flag defaults and limits.
const (
	defaultPort          = 53
	defaultWindow        = 30 * time.Second
	minWindow            = time.Second // sweeps run every 500 ms and SPEC section 4 allows 1 s of slack
	maxWindow            = 24 * time.Hour
	defaultBufferSize    = 4 << 20 // 4 MiB: see the capture section of the README
	minBufferSize        = 128 << 10
	maxBufferSize        = 1 << 30
	defaultSessionsMax   = 1000000
	maxSessionsMax       = 1 << 30
	defaultMaxLabelSets  = 5000
	maxMaxLabelSets      = math.MaxUint16 // geoID is a uint16
	defaultListenAddress = "127.0.0.1:9713"
	defaultTelemetryPath = "/metrics"
	defaultMaxRequests   = 40
	maxMaxRequests       = 10000
	// defaultMaxConnections bounds open HTTP connections: each costs the
	// server a goroutine and buffers until a timeout closes it.
	defaultMaxConnections = 64
	maxMaxConnections     = 10000
)

// sweepInterval is how often sessions are expired, on the sessions' clock:
// half the 1 s of slack SPEC section 4 allows.
const sweepInterval = 500 * time.Millisecond

// shutdownTimeout bounds the graceful HTTP shutdown on SIGINT/SIGTERM.
const shutdownTimeout = 5 * time.Second

// serverLimits are the HTTP server's timeouts and header limit. They are
// not flags; tests shorten them.
type serverLimits struct {
	readHeader time.Duration // slow or idle header senders are cut off after this
	read       time.Duration // whole request
	write      time.Duration // whole response, from the end of the request headers
	idle       time.Duration // keep-alive connections between scrapes
	maxHeader  int           // bytes of request headers
}

// defaultServerLimits suit Prometheus, whose scrape timeout is 10 s by
// default and whose requests carry a few small headers.
var defaultServerLimits = serverLimits{
	readHeader: 10 * time.Second,
	read:       30 * time.Second,
	write:      30 * time.Second,
	idle:       2 * time.Minute,
	maxHeader:  64 << 10,
}

// config is the validated command line.
type config struct {
	domains       []string      // -dnstt.domain, normalised by parseDomain
	port          uint16        // -dnstt.port
	window        time.Duration // -dnstt.window
	interfaces    []string      // -capture.interface; empty = all
	bufferSize    int           // -capture.buffer-size, bytes
	file          string        // -capture.file; "" = live capture, "-" = stdin
	sessionsMax   int           // -sessions.max
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
	port                           uint
	window                         time.Duration
	bufferSize                     byteSize
	file                           string
	sessionsMax                    int
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
	fs.Var(&v.domains, "dnstt.domain", "tunnel `domain` to watch, e.g. t.example.com (required; repeat for several tunnels)")
	fs.UintVar(&v.port, "dnstt.port", defaultPort, "UDP `port` the dnstt server answers on (the port on the wire, before any iptables redirect)")
	fs.DurationVar(&v.window, "dnstt.window", defaultWindow, "a session is active while its latest query is younger than this (1s to 24h)")
	fs.Var(&v.interfaces, "capture.interface", "network `interface` to capture on (repeatable; default: all interfaces)")
	fs.Var(&v.bufferSize, "capture.buffer-size", "kernel capture ring `size` in bytes; KiB, MiB, GiB suffixes accepted (128KiB to 1GiB)")
	fs.StringVar(&v.file, "capture.file", "", "read this pcap or pcapng `file` (\"-\" for standard input) instead of capturing, print the metrics to standard output and exit")
	fs.IntVar(&v.sessionsMax, "sessions.max", defaultSessionsMax, "most sessions tracked at once; queries of further sessions still count in queries and bytes")
	fs.StringVar(&v.countryDB, "geoip.country-database", "", "MaxMind-format country database (`path` to .mmdb): adds the country label of the resolver")
	fs.StringVar(&v.asnDB, "geoip.asn-database", "", "MaxMind-format ASN database (`path` to .mmdb): adds the asn label of the resolver")
	fs.IntVar(&v.maxLabelSets, "geoip.max-label-sets", defaultMaxLabelSets, "most distinct (country, asn) label combinations, ZZ/0 included, with an ASN database; further ones are counted under their country with asn 0 (room for each country's asn 0 is kept apart)")
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

dnstt_exporter watches the DNS traffic of a dnstt server passively and exports
tunnel usage (active sessions, peak, queries, bytes, sessions started) as
Prometheus metrics, by default at http://127.0.0.1:9713/metrics. Live capture
needs CAP_NET_RAW. With -capture.file it reads a pcap or pcapng file instead,
prints the metrics to standard output and exits.

Flags (two dashes work too):
`)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	b.WriteString(`
Signals: SIGINT and SIGTERM stop (in file mode: print what was read so far);
SIGHUP reloads the GeoIP databases.
Exit codes: 0 success, 1 capture, capture-file or listener error, 2 flag or
GeoIP database error.
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
	if len(v.domains) == 0 {
		return nil, usagef("-dnstt.domain: missing: name at least one tunnel domain (see -h)")
	}
	for _, s := range v.domains {
		d, err := parseDomain(s)
		if err != nil {
			return nil, usagef("-dnstt.domain: %w", err)
		}
		for _, o := range cfg.domains {
			if o == d {
				return nil, usagef("-dnstt.domain %q: given twice", s)
			}
		}
		cfg.domains = append(cfg.domains, d)
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
	if cfg.bufferSize < minBufferSize || cfg.bufferSize > maxBufferSize {
		return nil, usagef("-capture.buffer-size %s: want 128KiB to 1GiB", formatByteSize(cfg.bufferSize))
	}
	if cfg.file != "" && len(cfg.interfaces) > 0 {
		return nil, usagef("-capture.file and -capture.interface: give one or the other")
	}
	if cfg.sessionsMax < 1 || cfg.sessionsMax > maxSessionsMax {
		return nil, usagef("-sessions.max %d: want 1 to %d", cfg.sessionsMax, maxSessionsMax)
	}
	if v.maxLabelSets < 1 || v.maxLabelSets > maxMaxLabelSets {
		return nil, usagef("-geoip.max-label-sets %d: want 1 to %d", v.maxLabelSets, maxMaxLabelSets)
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

// checkTelemetryPath accepts an absolute URL path other than "/" made of
// URL path characters.
func checkTelemetryPath(p string) error {
	if len(p) < 2 || p[0] != '/' {
		return errors.New("want an absolute path other than /, e.g. /metrics")
	}
	for _, c := range []byte(p) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("/-._~", c) >= 0:
		default:
			return fmt.Errorf("character %q not allowed (letters, digits and /-._~ are)", c)
		}
	}
	return nil
}

// authenticator checks HTTP credentials: basic-auth users and/or a bearer
// token. Secrets are kept as SHA-256 digests so that every comparison has
// the same length and runs in constant time (crypto/subtle).
type authenticator struct {
	users    map[string][sha256.Size]byte // user → SHA-256 of the password
	token    [sha256.Size]byte            // SHA-256 of the bearer token
	hasToken bool
}

// loadAuthenticator reads the -web.basic-auth-file and
// -web.bearer-token-file. It returns nil when neither is set.
func loadAuthenticator(basicFile, bearerFile string) (*authenticator, error) {
	if basicFile == "" && bearerFile == "" {
		return nil, nil
	}
	a := &authenticator{}
	if basicFile != "" {
		users, err := readBasicAuthFile(basicFile)
		if err != nil {
			return nil, fmt.Errorf("-web.basic-auth-file %q: %w", basicFile, err)
		}
		a.users = users
	}
	if bearerFile != "" {
		b, err := os.ReadFile(bearerFile)
		if err != nil {
			return nil, fmt.Errorf("-web.bearer-token-file %q: %w", bearerFile, unwrapPathError(err))
		}
		tok := strings.TrimSpace(string(b))
		switch {
		case tok == "":
			return nil, fmt.Errorf("-web.bearer-token-file %q: empty", bearerFile)
		case strings.ContainsAny(tok, " \t\r\n"):
			return nil, fmt.Errorf("-web.bearer-token-file %q: the token contains white space", bearerFile)
		}
		a.token, a.hasToken = sha256.Sum256([]byte(tok)), true
	}
	return a, nil
}

// readBasicAuthFile parses lines "user:password"; blank lines and lines
// starting with # are skipped. The password is everything after the first
// colon.
func readBasicAuthFile(path string) (map[string][sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	users := make(map[string][sha256.Size]byte)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: want user:password", n)
		case user == "" || strings.ContainsAny(user, " \t"):
			return nil, fmt.Errorf("line %d: empty user name or white space in it", n)
		case pass == "":
			return nil, fmt.Errorf("line %d: empty password", n)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("line %d: user %q given twice", n, user)
		}
		users[user] = sha256.Sum256([]byte(pass))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("no user:password line")
	}
	return users, nil
}

// allow reports whether r carries valid credentials.
func (a *authenticator) allow(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if a.hasToken {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			return subtle.ConstantTimeCompare(d[:], a.token[:]) == 1
		}
	}
	if a.users != nil {
		if user, pass, ok := r.BasicAuth(); ok {
			want, known := a.users[user]
			d := sha256.Sum256([]byte(pass))
			// Compare even for an unknown user, against zeros, so the
			// time does not depend on the password.
			return subtle.ConstantTimeCompare(d[:], want[:]) == 1 && known
		}
	}
	return false
}

// challenge sets the WWW-Authenticate headers of a 401.
func (a *authenticator) challenge(h http.Header) {
	if a.users != nil {
		h.Add("WWW-Authenticate", `Basic realm="dnstt_exporter", charset="UTF-8"`)
	}
	if a.hasToken {
		h.Add("WWW-Authenticate", `Bearer realm="dnstt_exporter"`)
	}
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

// monoClock is the sessions' clock when capturing live: monotonic ns since
// an origin one hour before the process started, so that values are never
// near zero. The live capture and the sweeper share one monoClock.
type monoClock struct {
	start time.Time // holds a monotonic reading
}

// monoClockBase keeps the clock's values away from zero.
const monoClockBase = int64(time.Hour)

// newMonoClock returns a clock started now.
func newMonoClock() monoClock { return monoClock{start: time.Now()} }

// now returns the clock's current value in ns.
func (c monoClock) now() int64 { return int64(time.Since(c.start)) + monoClockBase }

// main runs the program and exits with its code.
func main() {
	os.Exit(run(os.Args[1:]))
}

// run is main without os.Exit, returning the exit code.
func run(args []string) int {
	return execute(args, os.Stdin, os.Stdout, os.Stderr)
}

// execute runs the program with the given standard streams.
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
	// Parts that log on their own (the GeoIP reload) use the default logger.
	slog.SetDefault(log)
	if cfg.auth != nil {
		warnReadableSecrets(log, cfg.basicAuthFile, cfg.bearerFile)
	}
	geo, err := openGeo(cfg.geo)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitUsage
	}
	if cfg.file != "" {
		return runFile(cfg, geo, log, stdin, stdout, stderr)
	}
	return runLive(cfg, geo, log, stderr)
}

// warnReadableSecrets logs a warning for credential files that others
// than their owner can read.
func warnReadableSecrets(log *slog.Logger, paths ...string) {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("credential file is readable by group or others; chmod 600 it", "file", p, "mode", fi.Mode().Perm().String())
		}
	}
}

// newPipeline builds the packet path for cfg.
func newPipeline(cfg *config, geo *geoResolver, dedup bool) *pipeline {
	pl := &pipeline{
		dec: newDecoder(cfg.domains, cfg.port),
		geo: geo,
		sessions: newSessionTable(sessionConfig{
			window:  cfg.window,
			max:     cfg.sessionsMax,
			domains: len(cfg.domains),
			geoIDs:  geo.maxIDs(),
		}),
		stats: &captureStats{},
	}
	if dedup {
		pl.dedup = newDedupTable()
	}
	return pl
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
		if runtime.GOMAXPROCS(0) > 1 {
			last, records, err = replayParallel(r, pl, &stopped)
		} else {
			last, records, err = replay(r, pl, &stopped)
		}
		if err != nil {
			return fail(err)
		}
	}
	log.Debug("capture file read", "file", cfg.file, "records", records, "seconds", time.Since(start).Seconds())
	m := newMetrics(metricsConfig{
		domains:  cfg.domains,
		sessions: pl.sessions,
		capture:  pl.stats,
		geo:      geo,
		fileMode: true,
		now:      func() int64 { return last },
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

// replay feeds every record of r to pl on the packet-time clock of SPEC
// section 4: every record moves the clock, which never goes backwards;
// sessions are swept every sweepInterval of that clock and once more at the
// last record's time. It returns that time and the number of records.
func replay(r *pcapReader, pl *pipeline, stopped *atomic.Bool) (last int64, records uint64, err error) {
	var rec pcapRecord
	clock, nextSweep := int64(math.MinInt64), int64(math.MinInt64)
	for !stopped.Load() {
		if err := r.next(&rec); err != nil {
			if err == io.EOF || err == errPcapStopped {
				break
			}
			return 0, records, err
		}
		records++
		clock = max(clock, rec.ts)
		if clock >= nextSweep {
			pl.sessions.sweep(clock)
			nextSweep = clock + int64(sweepInterval)
		}
		pl.handleLink(rec.lt, rec.data, rec.iface, clock)
	}
	if records == 0 {
		return 0, 0, nil
	}
	pl.sessions.sweep(clock)
	return clock, records, nil
}

// File mode on two cores: one goroutine reads and decodes records (the
// decoder is pure and read-only) into batches, the other takes the batches
// in file order and does everything with state exactly as replay does:
// clock, sweeps, the reason counters, duplicates, GeoIP, sessions. The
// output is therefore identical to replay's (TestReplayParallel checks).
// Batches are large so that the hand-offs between the goroutines (a
// wake-up each when one waits) cost little per record.
const (
	replayBatchLen = 2048 // records per batch
	replayBatches  = 4    // batches in flight
	replayNameLen  = 255  // longest question name a counted packet has (SPEC section 3)
)

// decodedRecord is one record decoded ahead of the in-order stage.
type decodedRecord struct {
	p     dnsttPacket // p.qname points into the batch's names
	r     ignoreReason
	iface uint64 // refined by the link header, as handleLink does
	ts    int64
}

// decodedBatch is a batch of decoded records in file order, then the
// error that ended reading, if any (io.EOF at the end).
type decodedBatch struct {
	recs  [replayBatchLen]decodedRecord
	names []byte // question names of the counted records, copied: the read buffer moves on
	n     int
	err   error
}

// replayParallel is replay with decoding on another goroutine.
func replayParallel(r *pcapReader, pl *pipeline, stopped *atomic.Bool) (last int64, records uint64, err error) {
	free := make(chan *decodedBatch, replayBatches)
	full := make(chan *decodedBatch, replayBatches)
	quit := make(chan struct{})
	defer close(quit)
	for range replayBatches {
		free <- &decodedBatch{names: make([]byte, 0, replayBatchLen*replayNameLen)}
	}
	go decodeAhead(r, pl.dec, free, full, quit, stopped)
	clock, nextSweep := int64(math.MinInt64), int64(math.MinInt64)
	for {
		b := <-full
		for i := range b.recs[:b.n] {
			d := &b.recs[i]
			records++
			clock = max(clock, d.ts)
			if clock >= nextSweep {
				pl.sessions.sweep(clock)
				nextSweep = clock + int64(sweepInterval)
			}
			pl.stats.received.Add(1)
			pl.count(&d.p, d.r, d.iface, clock)
		}
		err := b.err
		free <- b
		if err == io.EOF || err == errPcapStopped || (err == nil && stopped.Load()) {
			break
		}
		if err != nil {
			return 0, records, err
		}
	}
	if records == 0 {
		return 0, 0, nil
	}
	pl.sessions.sweep(clock)
	return clock, records, nil
}

// decodeAhead reads and decodes records into batches from free and sends
// them on full, until reading ends (the last batch carries the error),
// stopped is set or quit closes.
func decodeAhead(r *pcapReader, dec *decoder, free <-chan *decodedBatch, full chan<- *decodedBatch, quit <-chan struct{}, stopped *atomic.Bool) {
	var rec pcapRecord
	for {
		var b *decodedBatch
		select {
		case b = <-free:
		case <-quit:
			return
		}
		b.n, b.err, b.names = 0, nil, b.names[:0]
		for b.n < replayBatchLen {
			if stopped.Load() {
				b.err = errPcapStopped
				break
			}
			if err := r.next(&rec); err != nil {
				b.err = err
				break
			}
			d := &b.recs[b.n]
			d.p = dnsttPacket{}
			var ifindex int32
			d.r, ifindex = dec.decodeLink(rec.lt, rec.data, &d.p)
			d.iface, d.ts = rec.iface, rec.ts
			if ifindex >= 0 {
				d.iface = d.iface<<32 | uint64(uint32(ifindex))
			}
			switch {
			case d.r != ignoreNone:
				d.p.qname = nil
			case len(d.p.qname) <= replayNameLen:
				// names has room for replayNameLen per record: no growth.
				at := len(b.names)
				b.names = append(b.names, d.p.qname...)
				d.p.qname = b.names[at:len(b.names):len(b.names)]
			default:
				d.p.qname = bytes.Clone(d.p.qname) // longer than SPEC section 3 allows: never
			}
			b.n++
		}
		select {
		case full <- b:
		case <-quit:
			return
		}
		if b.err != nil {
			return
		}
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
	m := newMetrics(metricsConfig{
		domains:  cfg.domains,
		sessions: pl.sessions,
		capture:  pl.stats,
		geo:      geo,
		now:      clock.now,
		http:     web,
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
		"domains", strings.Join(cfg.domains, ","),
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
	wg.Go(func() { sweepLoop(pl.sessions, clock, stop) })
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

// sweepLoop expires sessions every sweepInterval on clock until stop.
func sweepLoop(t *sessionTable, clock monoClock, stop <-chan struct{}) {
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.sweep(clock.now())
		case <-stop:
			return
		}
	}
}

// describe names the authentication in the start-up log.
func (a *authenticator) describe() string {
	switch {
	case a == nil:
		return "none"
	case a.users != nil && a.hasToken:
		return "basic,bearer"
	case a.hasToken:
		return "bearer"
	}
	return "basic"
}

// newHTTPServer returns the server of live mode: the telemetry path, a
// landing page at /, 404 elsewhere, behind the concurrency limit and
// authentication.
func newHTTPServer(cfg *config, metricsHandler http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           newHandler(cfg, metricsHandler),
		ReadHeaderTimeout: cfg.limits.readHeader,
		ReadTimeout:       cfg.limits.read,
		WriteTimeout:      cfg.limits.write,
		IdleTimeout:       cfg.limits.idle,
		MaxHeaderBytes:    cfg.limits.maxHeader,
		// Handshake errors and the like are the client's problem.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if cfg.tlsCert != nil {
		srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{*cfg.tlsCert},
			MinVersion:   tls.VersionTLS12,
		}
	}
	return srv
}

// newHandler routes requests: cfg.telemetryPath → metrics, / → landing
// page, anything else 404; GET and HEAD only. At most cfg.maxRequests run
// at once (503 beyond), and with authentication configured every path
// needs credentials (401 otherwise).
func newHandler(cfg *config, metricsHandler http.Handler) http.Handler {
	ver, _, _ := buildInfo()
	landing := []byte(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>dnstt_exporter</title></head>
<body>
<h1>dnstt_exporter</h1>
<p>Prometheus exporter for dnstt DNS tunnel servers, version ` + html.EscapeString(ver) + `.</p>
<p><a href="` + html.EscapeString(cfg.telemetryPath) + `">Metrics</a></p>
</body>
</html>
`)
	sem := make(chan struct{}, cfg.maxRequests)
	auth := cfg.auth
	path := cfg.telemetryPath
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many concurrent requests", http.StatusServiceUnavailable)
			return
		}
		if auth != nil && !auth.allow(r) {
			auth.challenge(w.Header())
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != path && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == path {
			metricsHandler.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(landing)
	})
}

// geoDescription names the loaded GeoIP databases for the start-up log:
// flag, type and build date of each.
func geoDescription(g *geoResolver) string {
	dbs := g.describe()
	if len(dbs) == 0 {
		return "off"
	}
	var parts []string
	for _, d := range dbs {
		parts = append(parts, d.flag+"="+d.path+" ("+d.databaseType+", built "+d.buildTime.UTC().Format(time.DateOnly)+")")
	}
	return strings.Join(parts, ", ")
}

// reloadGeo reloads the GeoIP databases on SIGHUP. reload logs each
// database's outcome itself and keeps a database whose new file fails.
func reloadGeo(g *geoResolver, log *slog.Logger) {
	if g == nil {
		log.Info("SIGHUP: no GeoIP database to reload")
		return
	}
	if err := g.reload(); err != nil {
		log.Warn("SIGHUP: GeoIP reload incomplete; the databases that failed are kept as they were")
	}
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

// pipeline turns captured packets into metrics: decode, count the reason,
// drop duplicates, resolve GeoIP labels, update sessions. Capture sources
// (the live ring and the file reader) call it inline, one packet at a time.
type pipeline struct {
	dec      *decoder
	geo      *geoResolver
	sessions *sessionTable
	stats    *captureStats
	dedup    *dedupTable // nil when copies on several interfaces are impossible
}

// handleIP handles a packet that starts at its IP header, seen on interface
// iface (an ifindex when live) at now (ns on the sessions' clock).
func (pl *pipeline) handleIP(b []byte, iface uint64, now int64) {
	var p dnsttPacket
	pl.stats.received.Add(1)
	pl.count(&p, pl.dec.decodeIP(b, &p), iface, now)
}

// handleLink handles a captured record of link type lt from interface iface
// (the file's own interface number). A link header that records an
// interface (Linux cooked v2) refines it.
func (pl *pipeline) handleLink(lt linkType, b []byte, iface uint64, now int64) {
	var p dnsttPacket
	pl.stats.received.Add(1)
	r, ifindex := pl.dec.decodeLink(lt, b, &p)
	if ifindex >= 0 {
		iface = iface<<32 | uint64(uint32(ifindex))
	}
	pl.count(&p, r, iface, now)
}

// count records a decoded packet.
func (pl *pipeline) count(p *dnsttPacket, r ignoreReason, iface uint64, now int64) {
	if r != ignoreNone {
		pl.stats.ignored[r].Add(1)
		return
	}
	if pl.dedup != nil && pl.dedup.duplicate(p, iface, now) {
		pl.stats.duplicate.Add(1)
		return
	}
	g := pl.geo.lookup(p.resolver)
	if p.dir == dirQuery {
		pl.sessions.query(p, g, now)
	} else {
		pl.sessions.response(p, g, now)
	}
}
