package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"

	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/options"
)

// The soak (`make soak`, `bench -soak 10m`): one sidecar, started as the injector starts it (the
// memory limit of the injector's default resources passed with --memory-limit, so GOMEMLIMIT is
// set from it), takes a steady mix of legitimate bearer and cookie requests and hostile ones for a
// long time while its RSS is sampled. It fails when a legitimate request fails, when a hostile one
// gets through, or when RSS grows past the plateau of the first minute by more than the tolerance.

// soakConfig is what `make soak` varies.
type soakConfig struct {
	duration time.Duration
	// sample is the RSS sampling period.
	sample time.Duration
	// rate caps the requests started per second (all kinds together); workers run them.
	rate, workers int
	// hostile is the fraction of requests that are hostile.
	hostile float64
	// tolerance is how far above the first minute's plateau RSS may go later (a fraction).
	tolerance float64
}

// Request kinds. The legitimate ones must all answer 200 from the upstream; the hostile ones must
// never reach it.
const (
	kindBearer    = "bearer (legitimate)"
	kindCookie    = "cookie session (legitimate)"
	kindGarbage   = "garbage bearer token"
	kindTampered  = "tampered signature"
	kindAlgNone   = "alg none"
	kindRandomKid = "random kid (forger's key)"
	kindOversized = "oversized header (64 KiB)"
	kindBadCookie = "forged session cookie"
	kindSlow      = "slow client (headers dribbled)"
)

var hostileKinds = []string{kindGarbage, kindTampered, kindAlgNone, kindRandomKid, kindOversized, kindBadCookie, kindSlow}

// soakPlateauWindow is the first part of the run whose highest RSS is the plateau.
const soakPlateauWindow = time.Minute

// maxSlowClients bounds the slow connections open at once (far below the sidecar's connection cap,
// so legitimate requests are never refused for capacity).
const maxSlowClients = 32

// RSSSample is one reading of the sidecar's resident memory.
type RSSSample struct {
	At  time.Duration
	RSS float64 // MB
}

// KindStats counts the answers to one kind of request.
type KindStats struct {
	Requests int64
	// Statuses by HTTP status ("closed" when the sidecar hung up without an answer).
	Statuses map[string]int64
	// Failures are legitimate requests that did not get the upstream's 200, or hostile ones that
	// reached the upstream.
	Failures int64
	// Example is the first failure, for the report.
	Example string
}

// SoakReport is one soak run.
type SoakReport struct {
	Config                   soakConfig
	Started                  time.Time
	Elapsed                  time.Duration
	CPUs                     int
	LoadBefore, LoadAfter    string
	MemoryLimit, SoftLimit   int64
	Samples                  []RSSSample
	Kinds                    map[string]*KindStats
	Logins, TokensMinted     int64
	JWKSFetches              map[string]float64
	SidecarCPU               time.Duration
	Plateau, Max, Last, Peak float64
	// SlopeMBPerMin is the least-squares slope of RSS after the plateau window.
	SlopeMBPerMin float64
	Verdict       []string // empty: passed
}

func (r *SoakReport) totals() (legit, hostile, failures int64) {
	for k, s := range r.Kinds {
		if k == kindBearer || k == kindCookie {
			legit += s.Requests
		} else {
			hostile += s.Requests
		}
		failures += s.Failures
	}
	return
}

// soakVerdict decides the run from its samples and counts: it sets the plateau (the highest RSS of
// the first minute), the highest and last RSS after it, the slope, and the reasons the run failed.
func (r *SoakReport) soakVerdict(limitMB float64) {
	r.Plateau, r.Max, r.Peak = 0, 0, 0
	var after []RSSSample
	for _, s := range r.Samples {
		r.Peak = max(r.Peak, s.RSS)
		if s.At <= soakPlateauWindow {
			r.Plateau = max(r.Plateau, s.RSS)
		} else {
			after = append(after, s)
			r.Max = max(r.Max, s.RSS)
		}
	}
	r.Verdict = nil
	if len(after) == 0 || r.Plateau == 0 {
		r.Verdict = append(r.Verdict, fmt.Sprintf("too short: no RSS sample after the first %s (run at least 2m)", soakPlateauWindow))
	} else {
		r.Last = after[len(after)-1].RSS
		r.SlopeMBPerMin = slope(after)
		if bound := r.Plateau * (1 + r.Config.tolerance); r.Max > bound {
			r.Verdict = append(r.Verdict, fmt.Sprintf("RSS grew to %.1f MB, past the first minute's plateau %.1f MB + %.0f%% (%.1f MB)",
				r.Max, r.Plateau, r.Config.tolerance*100, bound))
		}
	}
	if limitMB > 0 && r.Peak > limitMB {
		r.Verdict = append(r.Verdict, fmt.Sprintf("RSS %.1f MB passed the container limit %.0f MB", r.Peak, limitMB))
	}
	kinds := make([]string, 0, len(r.Kinds))
	for k := range r.Kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if s := r.Kinds[k]; s.Failures > 0 {
			r.Verdict = append(r.Verdict, fmt.Sprintf("%d of %d %s requests failed (first: %s)", s.Failures, s.Requests, k, s.Example))
		}
	}
	for _, k := range []string{kindBearer, kindCookie} {
		if s := r.Kinds[k]; s == nil || s.Requests == 0 {
			r.Verdict = append(r.Verdict, "no "+k+" request was made")
		}
	}
}

// slope is the least-squares slope of RSS over time, in MB per minute.
func slope(s []RSSSample) float64 {
	if len(s) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range s {
		x := p.At.Minutes()
		sx, sy, sxx, sxy = sx+x, sy+p.RSS, sxx+x*x, sxy+x*p.RSS
	}
	n := float64(len(s))
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// soaker runs the load of one soak.
type soaker struct {
	b        *bench
	cfg      soakConfig
	target   string // the sidecar's proxy URL
	tokenURL string

	mu      sync.Mutex
	kinds   map[string]*KindStats
	tokens  []string // access tokens of alice, replaced as new ones are minted
	cookies []string // session Cookie headers, replaced as new logins happen
	claims  map[string]any

	forger   *ecdsa.PrivateKey
	legit    *http.Client
	hostile  *http.Client
	slow     chan struct{}
	logins   atomic.Int64
	minted   atomic.Int64
	upstream []byte
}

func (s *soaker) record(kind, status string, failed bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.kinds[kind]
	if k == nil {
		k = &KindStats{Statuses: map[string]int64{}}
		s.kinds[kind] = k
	}
	k.Requests++
	k.Statuses[status]++
	if failed {
		k.Failures++
		if k.Example == "" {
			k.Example = why
		}
	}
}

// mint gets a fresh access token for alice from the IdP's token endpoint (password grant, as a
// CLI would), so the sidecar keeps meeting tokens it has not verified yet.
func (s *soaker) mint(ctx context.Context) (string, error) {
	tok, err := oidctest.PasswordGrant(ctx, s.legit, s.tokenURL, oidctest.Client{ID: clientID, Secret: clientSecret}, "alice", "alice")
	if err != nil {
		return "", err
	}
	s.minted.Add(1)
	return tok, nil
}

// Pools of credentials in use at once, and how often one of them is replaced by a new one.
const (
	soakTokenPool    = 32
	soakCookiePool   = 8
	soakMintEvery    = 2 * time.Second
	soakLoginEvery   = 20 * time.Second
	soakOversizedHdr = 64 << 10
)

func (s *soaker) prepare(ctx context.Context) error {
	for range soakTokenPool {
		tok, err := s.mint(ctx)
		if err != nil {
			return err
		}
		s.tokens = append(s.tokens, tok)
	}
	for range soakCookiePool {
		ck, err := s.b.login(ctx, namePodgate)
		if err != nil {
			return err
		}
		s.logins.Add(1)
		s.cookies = append(s.cookies, ck)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(s.tokens[0], ".")[1])
	if err != nil {
		return err
	}
	if err := json.Unmarshal(payload, &s.claims); err != nil {
		return err
	}
	s.forger, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return err
}

// renew replaces one token every soakMintEvery and one session every soakLoginEvery until ctx ends.
func (s *soaker) renew(ctx context.Context, errs chan<- error) {
	mint, login := time.NewTicker(soakMintEvery), time.NewTicker(soakLoginEvery)
	defer mint.Stop()
	defer login.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-mint.C:
			tok, err := s.mint(ctx)
			if err != nil {
				if !ended(ctx) {
					errs <- fmt.Errorf("minting a token: %w", err)
				}
				return
			}
			s.mu.Lock()
			s.tokens[mrand.IntN(len(s.tokens))] = tok
			s.mu.Unlock()
		case <-login.C:
			ck, err := s.b.login(ctx, namePodgate)
			if err != nil {
				if !ended(ctx) {
					errs <- fmt.Errorf("logging in: %w", err)
				}
				return
			}
			s.logins.Add(1)
			s.mu.Lock()
			s.cookies[mrand.IntN(len(s.cookies))] = ck
			s.mu.Unlock()
		}
	}
}

func (s *soaker) pick(pool []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return pool[mrand.IntN(len(pool))]
}

// one sends one request of a kind drawn from the mix.
func (s *soaker) one(ctx context.Context) {
	if mrand.Float64() >= s.cfg.hostile {
		if mrand.IntN(2) == 0 {
			s.legitimate(ctx, kindBearer, "Authorization", "Bearer "+s.pick(s.tokens))
		} else {
			s.legitimate(ctx, kindCookie, "Cookie", s.pick(s.cookies))
		}
		return
	}
	kind := hostileKinds[mrand.IntN(len(hostileKinds))]
	if kind == kindSlow {
		select {
		case s.slow <- struct{}{}:
			go func() {
				defer func() { <-s.slow }()
				s.slowClient(ctx)
			}()
			return
		default:
			kind = kindGarbage // as many slow clients as allowed are already hanging on
		}
	}
	var name, value string
	switch kind {
	case kindGarbage:
		name, value = "Authorization", "Bearer "+randomB64(600)
	case kindTampered:
		tok := s.pick(s.tokens)
		name, value = "Authorization", "Bearer "+tok[:strings.LastIndexByte(tok, '.')+1]+randomB64(342)
	case kindAlgNone:
		name, value = "Authorization", "Bearer "+oidctest.MintNone(s.claims)
	case kindRandomKid:
		tok := oidctest.MintRaw(jose.SigningKey{Algorithm: jose.ES256, Key: s.forger}, randomB64(16), s.claims)
		name, value = "Authorization", "Bearer "+tok
	case kindOversized:
		name, value = "X-Padding", strings.Repeat("a", soakOversizedHdr)
	case kindBadCookie:
		// The real cookies' names with random values of the same length.
		var parts []string
		for _, c := range strings.Split(s.pick(s.cookies), "; ") {
			n, v, _ := strings.Cut(c, "=")
			parts = append(parts, n+"="+randomB64(len(v)))
		}
		name, value = "Cookie", strings.Join(parts, "; ")
	}
	s.hostileRequest(ctx, kind, name, value)
}

// ended reports whether the run is over: a request failing at the very end (its dial or read cut
// by the run's deadline, which the network stack may see before the context reports it) is no
// failure of the sidecar.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl.Add(-time.Second))
}

func randomB64(n int) string {
	b := make([]byte, n*3/4+1)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func (s *soaker) legitimate(ctx context.Context, kind, name, value string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.target, nil)
	if err != nil {
		s.record(kind, "error", true, err.Error())
		return
	}
	req.Header.Set(name, value)
	resp, err := s.legit.Do(req)
	if err != nil {
		if !ended(ctx) {
			s.record(kind, "error", true, err.Error())
		}
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	status := strconv.Itoa(resp.StatusCode)
	switch {
	case err != nil && ended(ctx):
	case err != nil:
		s.record(kind, status, true, "reading the answer: "+err.Error())
	case resp.StatusCode != http.StatusOK || string(body) != string(s.upstream):
		s.record(kind, status, true, fmt.Sprintf("HTTP %d: %.100q", resp.StatusCode, body))
	default:
		s.record(kind, status, false, "")
	}
}

func (s *soaker) hostileRequest(ctx context.Context, kind, name, value string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.target, nil)
	if err != nil {
		s.record(kind, "error", true, err.Error())
		return
	}
	req.Header.Set(name, value)
	resp, err := s.hostile.Do(req)
	if err != nil {
		if !ended(ctx) {
			s.record(kind, "closed", false, "")
		}
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	reached := resp.StatusCode < 300 || string(body) == string(s.upstream)
	s.record(kind, strconv.Itoa(resp.StatusCode), reached, fmt.Sprintf("HTTP %d: the upstream answered", resp.StatusCode))
}

// slowClient opens a connection and dribbles a header block at it, one 1 KiB header every 250 ms,
// until the sidecar answers or hangs up: the header size bound (431) or the header read timeout
// ends it. It must never be answered by the upstream.
func (s *soaker) slowClient(ctx context.Context) {
	u, _ := url.Parse(s.target)
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		if !ended(ctx) {
			s.record(kindSlow, "error", true, err.Error())
		}
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- "closed"
			return
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode < 300 || string(body) == string(s.upstream) {
			answered <- "reached"
			return
		}
		answered <- strconv.Itoa(resp.StatusCode)
	}()
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n", u.Host); err != nil {
		s.record(kindSlow, "closed", false, "")
		return
	}
	line := "X-Slow-%d: " + strings.Repeat("s", 1024) + "\r\n"
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case st := <-answered:
			if !ended(ctx) {
				s.record(kindSlow, st, st == "reached", "a slow client reached the upstream")
			}
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			// Write errors are expected once the sidecar hung up; the reader reports the outcome.
			_, _ = fmt.Fprintf(conn, line, i)
		}
	}
}

// soak runs the whole soak and returns its report.
func (b *bench) soak(ctx context.Context, cfg soakConfig) (*SoakReport, error) {
	rep := &SoakReport{Config: cfg, CPUs: runtime.NumCPU(), Started: time.Now().UTC(), LoadBefore: loadAvg()}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := b.startFixture(ctx, self); err != nil {
		return nil, err
	}
	q := inject.DefaultConfig().Resources.Limits[corev1.ResourceMemory]
	limit := q.Value()
	if limit <= 0 {
		return nil, errors.New("the injector's default resources set no memory limit")
	}
	rep.MemoryLimit, rep.SoftLimit = limit, limit/100*85
	b.sidecars, b.sideURL, b.sideAdmin = map[int]*proc{}, map[int]string{}, map[int]string{}
	if err := b.startSidecar(ctx, 0, "Authorization: Bearer "+b.fx.Tokens[1], func(o *options.Options) { o.MemoryLimit = limit }); err != nil {
		return nil, err
	}
	if err := checkSoftLimit(b.sidecars[0].log); err != nil {
		return nil, err
	}
	s := &soaker{
		b: b, cfg: cfg, target: b.sideURL[0], tokenURL: b.fx.Issuer + "/token", kinds: map[string]*KindStats{},
		legit:    &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.workers}},
		hostile:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		slow:     make(chan struct{}, maxSlowClients),
		upstream: []byte("hello from the upstream\n"),
	}
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	cpuBefore, err := cpuTime(b.sidecars[0].pid())
	if err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.renew(runCtx, errs) }()
	tick := time.NewTicker(time.Second / time.Duration(cfg.rate))
	defer tick.Stop()
	for range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
					s.one(runCtx)
				}
			}
		}()
	}
	start := time.Now()
	sampler := time.NewTicker(cfg.sample)
	defer sampler.Stop()
	var runErr error
	next := time.Minute
sampling:
	for {
		mb, err := rssMB(b.sidecars[0].pid())
		if err != nil {
			runErr = fmt.Errorf("the sidecar is gone (%w); log %s", err, b.sidecars[0].log)
			cancel()
			break
		}
		at := time.Since(start)
		rep.Samples = append(rep.Samples, RSSSample{At: at, RSS: mb})
		if at >= next {
			legit, hostile, failures := (&SoakReport{Kinds: s.snapshot()}).totals()
			logf("soak %s: RSS %.1f MB, %d legitimate and %d hostile requests, %d failures", at.Round(time.Second), mb, legit, hostile, failures)
			next += time.Minute
		}
		select {
		case <-runCtx.Done():
			break sampling
		case err := <-errs:
			runErr = err
			cancel()
			break sampling
		case <-sampler.C:
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if runErr != nil {
		return nil, runErr
	}
	rep.Elapsed = time.Since(start).Round(time.Second)
	cpuAfter, err := cpuTime(b.sidecars[0].pid())
	if err != nil {
		return nil, err
	}
	rep.SidecarCPU = cpuAfter - cpuBefore
	rep.Kinds = s.snapshot()
	rep.Logins, rep.TokensMinted = s.logins.Load(), s.minted.Load()
	rep.JWKSFetches, err = sidecarCounter(b.sideAdmin[0], "podgate_jwks_refreshes_total", "result")
	if err != nil {
		return nil, err
	}
	rep.LoadAfter = loadAvg()
	rep.soakVerdict(float64(limit) / (1 << 20))
	return rep, nil
}

func (s *soaker) snapshot() map[string]*KindStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*KindStats{}
	for k, v := range s.kinds {
		c := *v
		c.Statuses = map[string]int64{}
		for st, n := range v.Statuses {
			c.Statuses[st] = n
		}
		out[k] = &c
	}
	return out
}

// checkSoftLimit confirms from the sidecar's log that it set the Go soft memory limit.
func checkSoftLimit(logPath string) error {
	raw, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	if !strings.Contains(string(raw), "goSoftLimitBytes") {
		return errors.New("the sidecar did not log its Go soft memory limit: --memory-limit was not applied")
	}
	return nil
}

// sidecarCounter reads one counter family from the sidecar's /metrics, by the value of label.
func sidecarCounter(admin, family, label string) (map[string]float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	prefix := family + "{" + label + "=\""
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		val, num, ok := strings.Cut(rest, "\"} ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", family, err)
		}
		out[val] = n
	}
	return out, sc.Err()
}
