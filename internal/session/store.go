package session

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/cache"
)

// ChunkSize is the largest cookie value written; with name and attributes it stays under the
// 4096 bytes per cookie every browser accepts.
const ChunkSize = 3800

// maxChunks bounds how many split cookies are read: a request cannot make the proxy reassemble an
// arbitrarily large value.
const maxChunks = 10

// ErrExpired means the session outlived --cookie-expire (a replayed old cookie).
var ErrExpired = errors.New("session expired")

// ErrNoSession means the request carries no session cookie.
var ErrNoSession = errors.New("no session cookie")

// SignOutPath is the sign-out endpoint, the only path the ID token cookie is sent to.
const SignOutPath = "/oauth2/sign_out"

// Session is what the cookie holds: only what requests need, since the browser sends it with every
// one of them and every request pays its parsing.
type Session struct {
	// AccessToken is kept only when the configuration forwards it to the app (the proxy leaves it
	// empty otherwise): with Keycloak it is the largest part of a session.
	AccessToken  string `json:"at,omitempty"`
	RefreshToken string `json:"rt,omitempty"`
	// IDToken is not part of the session cookie: Save writes it to a cookie of its own (IDTokenName)
	// whose Path is SignOutPath, where it serves as id_token_hint, so ordinary requests do not carry
	// its ~1 KB (Keycloak). Load leaves it empty; LoadIDToken reads it.
	IDToken string `json:"-"`
	// ForwardedIDToken is the ID token once more, kept in the session cookie only when the
	// configuration sends it to the app with every request (--pass-id-token; the proxy leaves it
	// empty otherwise), since the ID token cookie reaches SignOutPath only.
	ForwardedIDToken string `json:"it,omitempty"`
	// Expiry is the access token's expiry; the proxy refreshes shortly before it.
	Expiry time.Time `json:"ex"`
	// Created is when the user logged in; the session ends Created+MaxAge, refreshes included.
	Created  time.Time      `json:"cr"`
	Identity *auth.Identity `json:"id"`
}

// Store reads and writes sessions and the login (CSRF) cookie.
type Store struct {
	cache  *cache.Cache[*Session]
	codec  *Codec
	name   string
	secure bool
	// domain, when set, is the Domain attribute of the session cookies (not of the login
	// cookie, which only the host that started the login needs).
	domain string
	maxAge time.Duration
	now    func() time.Time
}

// NewStore returns a store writing cookie name (already prefixed, see options.EffectiveCookieName).
func NewStore(codec *Codec, name string, secure bool, maxAge time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{codec: codec, name: name, secure: secure, maxAge: maxAge, now: now,
		cache: cache.NewBytes[*Session](cacheEntries, CacheBytes)}
}

// The decrypted-session cache is bounded by bytes as well as entries: a session holds three tokens,
// several KB, and every login and refresh makes a new cookie, so ten thousand entries could be tens
// of MB of a sidecar limited to 128Mi. An entry is counted at twice its sealed size (the decoded
// tokens and the identity built from them).
const (
	cacheEntries = 10000
	// CacheBytes bounds the decrypted sessions held at once.
	CacheBytes = 8 << 20
)

// WithDomain makes the session cookies domain cookies, sent to every host under domain, and
// returns s. The name must then not carry the "__Host-" prefix (browsers refuse such cookies).
func (s *Store) WithDomain(domain string) *Store {
	s.domain = strings.TrimPrefix(domain, ".")
	return s
}

// CSRFName returns the login cookie's name.
func (s *Store) CSRFName() string { return s.name + "_csrf" }

// IDTokenName returns the name of the cookie holding the ID token (sent to SignOutPath only).
// Browsers accept a "__Host-"
// cookie only with Path=/, so under that prefix the ID token cookie is "__Secure-" (Secure, any
// path). A sibling host could then plant one, but only a value sealed by this key decrypts: at
// worst a user's own earlier ID token, which ends nothing but that user's IdP session.
func (s *Store) IDTokenName() string {
	if rest, ok := strings.CutPrefix(s.name, "__Host-"); ok {
		return "__Secure-" + rest + "_idt"
	}
	return s.name + "_idt"
}

// Owns reports whether a cookie name belongs to the proxy (session, its chunks, the CSRF cookie,
// the ID token cookie). Those cookies are removed from every request before it reaches the app.
func (s *Store) Owns(name string) bool {
	if !strings.HasPrefix(name, s.name) {
		return strings.HasPrefix(name, "__Secure-") && name == s.IDTokenName()
	}
	rest := name[len(s.name):]
	if rest == "" || rest == "_csrf" || rest == "_idt" {
		return true
	}
	if len(rest) < 2 || rest[0] != '_' {
		return false
	}
	_, err := strconv.Atoi(rest[1:])
	return err == nil
}

func chunkName(base string, i int) string { return base + "_" + strconv.Itoa(i) }

// Cookies is a request's Cookie header split once: the proxy's own cookies by name (first wins),
// and the app's cookies in order. Each request is split once (Store.Cookies) and every step that
// needs its cookies (load, refresh, save, clear, strip) reads the result.
type Cookies struct {
	own map[string]string
	app []string
	// owned is true when the request carried a cookie of the proxy's, valid or not.
	owned bool
}

// Cookies splits the request's Cookie headers. It scans for the proxy's names only: parsing and
// validating every cookie, as http.Request.Cookies does, was the largest cost of the cookie path.
// Values need no validation here; they are authenticated by AES-GCM.
func (s *Store) Cookies(h http.Header) Cookies {
	var c Cookies
	for _, line := range h["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			name, val, ok := strings.Cut(p, "=")
			if !s.Owns(strings.TrimSpace(name)) {
				c.app = append(c.app, p)
				continue
			}
			c.owned = true
			if !ok {
				continue
			}
			if c.own == nil {
				c.own = make(map[string]string, 2)
			}
			if _, dup := c.own[name]; !dup {
				c.own[name] = val
			}
		}
	}
	return c
}

// App is the Cookie header the app may see: the request's cookies without the proxy's.
func (c Cookies) App() string { return strings.Join(c.app, "; ") }

// readValue joins a possibly split cookie value.
func readValue(cookies map[string]string, base string) (string, bool) {
	if v, ok := cookies[base]; ok {
		return v, true
	}
	var b strings.Builder
	for i := 0; i < maxChunks; i++ {
		v, ok := cookies[chunkName(base, i)]
		if !ok {
			break
		}
		b.WriteString(v)
	}
	return b.String(), b.Len() > 0
}

// Load returns the request's session. ErrNoSession, ErrInvalid and ErrExpired all mean "log in".
// The returned session is shared with a cache of recently decrypted cookies: treat it as read-only
// (copy it before changing it).
func (s *Store) Load(c Cookies) (*Session, error) {
	v, ok := readValue(c.own, s.name)
	if !ok {
		return nil, ErrNoSession
	}
	// Decrypting and decoding a multi-KB cookie costs tens of microseconds; a browser sends the
	// same cookie on every request until it changes, so decoded sessions are cached by the hash of
	// the sealed value (only values that decrypted get there).
	key := sha256.Sum256([]byte(v))
	if sess, ok := s.cache.Get(key, s.now()); ok {
		return sess, nil
	}
	pt, err := s.codec.Open(s.name, v)
	if err != nil {
		return nil, err
	}
	var sess Session
	if err := json.Unmarshal(pt, &sess); err != nil || sess.Identity == nil {
		return nil, ErrInvalid
	}
	if s.now().After(sess.Created.Add(s.maxAge)) {
		return nil, ErrExpired
	}
	s.cache.PutSized(key, &sess, 2*len(v), sess.Created.Add(s.maxAge), s.now())
	return &sess, nil
}

func (s *Store) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteLaxMode}
}

// sessionCookie is cookie with the session's Domain, when there is one.
func (s *Store) sessionCookie(name, value string, maxAge int) *http.Cookie {
	c := s.cookie(name, value, maxAge)
	c.Domain = s.domain
	return c
}

// CookieNames lists every name a cookie written with the session can have: the whole value, each
// chunk of a split one, and the ID token cookie. An ingress that copies the auth answer's cookies
// to the browser by name (Traefik's forwardAuth addAuthCookiesToResponse) needs all of them: the
// expirations of chunks that a smaller session no longer uses, and the ID token cookie, which a
// refresh on the auth endpoint rewrites (or a failed one expires) like the session, although the
// browser sends it to SignOutPath only.
func (s *Store) CookieNames() []string {
	names := []string{s.name}
	for i := 0; i < maxChunks; i++ {
		names = append(names, chunkName(s.name, i))
	}
	return append(names, s.IDTokenName())
}

// Save writes the session, split into name_0, name_1, ... when larger than ChunkSize, and expires
// whichever of the other form the request still carries. A non-empty sess.IDToken is written to
// the ID token cookie (a session without one keeps the cookie the browser has).
func (s *Store) Save(w http.ResponseWriter, c Cookies, sess *Session) error {
	pt, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	v := s.codec.Seal(s.name, pt)
	maxAge := int(time.Until(sess.Created.Add(s.maxAge)).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	if sess.IDToken != "" {
		s.saveIDToken(w, sess.IDToken, maxAge)
	}
	present := c.own
	// The cookie being replaced (a refresh, a new login) leaves the cache at once instead of
	// holding its share of the bound until --cookie-expire.
	if old, ok := readValue(present, s.name); ok {
		s.cache.Delete(sha256.Sum256([]byte(old)))
	}
	if len(v) <= ChunkSize {
		http.SetCookie(w, s.sessionCookie(s.name, v, maxAge))
		s.expireChunks(w, present, 0)
		return nil
	}
	n := 0
	for ; len(v) > 0; n++ {
		part := v[:min(ChunkSize, len(v))]
		v = v[len(part):]
		http.SetCookie(w, s.sessionCookie(chunkName(s.name, n), part, maxAge))
	}
	if n > maxChunks {
		return errors.New("session too large even when split")
	}
	if _, ok := present[s.name]; ok {
		http.SetCookie(w, s.sessionCookie(s.name, "", -1))
	}
	s.expireChunks(w, present, n)
	return nil
}

func (s *Store) expireChunks(w http.ResponseWriter, present map[string]string, from int) {
	for i := from; i < maxChunks; i++ {
		if _, ok := present[chunkName(s.name, i)]; ok {
			http.SetCookie(w, s.sessionCookie(chunkName(s.name, i), "", -1))
		}
	}
}

// saveIDToken writes the ID token cookie. An ID token too large for one cookie is not kept (its
// cookie is expired instead): sign-out then names the client instead of the session, and Keycloak
// asks the user to confirm.
func (s *Store) saveIDToken(w http.ResponseWriter, idToken string, maxAge int) {
	c := s.idTokenCookie(s.codec.Seal(s.IDTokenName(), []byte(idToken)), maxAge)
	if len(c.Value) > ChunkSize {
		c.Value, c.MaxAge = "", -1
	}
	http.SetCookie(w, c)
}

// idTokenCookie is the ID token cookie: a session cookie (the Domain included, so sign-out on any
// subdomain finds it) sent to SignOutPath only.
func (s *Store) idTokenCookie(value string, maxAge int) *http.Cookie {
	c := s.sessionCookie(s.IDTokenName(), value, maxAge)
	c.Path = SignOutPath
	return c
}

// LoadIDToken returns the ID token of the request's ID token cookie, or "" (none, or it does not
// decrypt). Only requests to SignOutPath carry it.
func (s *Store) LoadIDToken(c Cookies) string {
	v, ok := c.own[s.IDTokenName()]
	if !ok {
		return ""
	}
	pt, err := s.codec.Open(s.IDTokenName(), v)
	if err != nil {
		return ""
	}
	return string(pt)
}

// Clear expires every session cookie the request carries, and the ID token cookie, which requests
// outside SignOutPath do not show: a new login must never sign out with an old session's hint.
func (s *Store) Clear(w http.ResponseWriter, c Cookies) {
	present := c.own
	if old, ok := readValue(present, s.name); ok {
		s.cache.Delete(sha256.Sum256([]byte(old)))
	}
	if _, ok := present[s.name]; ok {
		http.SetCookie(w, s.sessionCookie(s.name, "", -1))
	}
	s.expireChunks(w, present, 0)
	http.SetCookie(w, s.idTokenCookie("", -1))
}

// Login is the state of one login in progress, bound to the browser by the CSRF cookie.
type Login struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Redirect string `json:"r"`
	// Callback is the redirect_uri sent to the IdP, which the code exchange must repeat.
	Callback string    `json:"c"`
	Expires  time.Time `json:"e"`
}

// LoginTTL bounds how long a login may take at the IdP.
const LoginTTL = 10 * time.Minute

// SaveLogin writes the CSRF cookie.
func (s *Store) SaveLogin(w http.ResponseWriter, l *Login) {
	l.Expires = s.now().Add(LoginTTL)
	pt, _ := json.Marshal(l)
	http.SetCookie(w, s.cookie(s.CSRFName(), s.codec.Seal(s.CSRFName(), pt), int(LoginTTL.Seconds())))
}

// LoadLogin reads and checks the CSRF cookie.
func (s *Store) LoadLogin(c Cookies) (*Login, error) {
	v, ok := c.own[s.CSRFName()]
	if !ok {
		return nil, ErrNoSession
	}
	pt, err := s.codec.Open(s.CSRFName(), v)
	if err != nil {
		return nil, err
	}
	var l Login
	if err := json.Unmarshal(pt, &l); err != nil {
		return nil, ErrInvalid
	}
	if s.now().After(l.Expires) {
		return nil, ErrExpired
	}
	return &l, nil
}

// ClearLogin expires the CSRF cookie.
func (s *Store) ClearLogin(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie(s.CSRFName(), "", -1))
}

// StripCookies sets the request's Cookie header to the app's cookies of c (the split of that same
// header): session cookies can be several KB and carry tokens the app must not see.
func (s *Store) StripCookies(h http.Header, c Cookies) {
	switch {
	case !c.owned:
	case len(c.app) == 0:
		h.Del("Cookie")
	default:
		h["Cookie"] = []string{c.App()}
	}
}
