package main

// The HTTP side of live mode: the server and its limits, the request
// handler (telemetry path, landing page, concurrency limit) and the
// authenticator for basic and bearer credentials.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"
)

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
