package framework

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Browser is an HTTP client that behaves like a browser as far as a login flow cares: it keeps
// cookies, follows redirects, asks for HTML, and can fill in Keycloak's login form. It records
// every URL it visited, so a test can assert the path a login took.
type Browser struct {
	Client *http.Client
	// Visited lists every URL requested, redirects included, in order.
	Visited []string
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	b := &Browser{}
	b.Client = &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 15 {
				return errors.New("stopped after 15 redirects")
			}
			b.Visited = append(b.Visited, req.URL.String())
			req.Header.Set("Accept", via[0].Header.Get("Accept"))
			return nil
		},
	}
	return b
}

// Get fetches u as a browser would, following redirects.
func (b *Browser) Get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

func (b *Browser) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	b.Visited = append(b.Visited, req.URL.String())
	return b.Client.Do(req)
}

// Page is a fetched HTML page.
type Page struct {
	URL    *url.URL
	Status int
	Body   string
}

// Login opens start (a protected URL), which must lead to a login form, submits username and
// password there, and returns the page the flow ends on: the protected page itself when the login
// and the callback worked.
func (b *Browser) Login(ctx context.Context, start, username, password string) (Page, error) {
	resp, err := b.Get(ctx, start)
	if err != nil {
		return Page{}, fmt.Errorf("opening %s: %w", start, err)
	}
	login, err := readPage(resp)
	if err != nil {
		return Page{}, err
	}
	action, fields, err := LoginForm(login.Body)
	if err != nil {
		return Page{}, fmt.Errorf("%s (HTTP %d) is not a login page: %w", login.URL, login.Status, err)
	}
	target, err := login.URL.Parse(action)
	if err != nil {
		return Page{}, fmt.Errorf("login form action %q: %w", action, err)
	}
	fields.Set("username", username)
	fields.Set("password", password)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(fields.Encode()))
	if err != nil {
		return Page{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = b.do(req)
	if err != nil {
		return Page{}, fmt.Errorf("submitting the login form to %s: %w", target.Host, err)
	}
	return readPage(resp)
}

func readPage(resp *http.Response) (Page, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Page{}, fmt.Errorf("reading %s: %w", resp.Request.URL, err)
	}
	return Page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(body)}, nil
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	attrRE  = regexp.MustCompile(`(?is)\b([a-z-]+)\s*=\s*"([^"]*)"`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
)

// LoginForm finds the form on an HTML page that has a password field (Keycloak's kc-form-login)
// and returns its action and the values of its other named inputs (hidden fields included).
func LoginForm(page string) (action string, fields url.Values, err error) {
	for _, form := range formRE.FindAllStringSubmatch(page, -1) {
		attrs := attributes(form[1])
		fields = url.Values{}
		hasPassword := false
		for _, input := range inputRE.FindAllStringSubmatch(form[2], -1) {
			in := attributes(input[1])
			if strings.EqualFold(in["type"], "password") {
				hasPassword = true
			}
			if name := in["name"]; name != "" {
				fields.Set(name, in["value"])
			}
		}
		if hasPassword {
			if attrs["action"] == "" {
				return "", nil, errors.New("the login form has no action")
			}
			return attrs["action"], fields, nil
		}
	}
	return "", nil, errors.New("no form with a password field")
}

func attributes(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(tag, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}
