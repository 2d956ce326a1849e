package proxy

import (
	"net/http/httptest"
	"testing"
)

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":                  true,
		"application/grpc+proto":            true,
		"application/grpc+json":             true,
		"Application/GRPC":                  true,
		"application/grpc; charset=utf-8":   true,
		"application/grpc-web":              false,
		"application/grpc-web+proto":        false,
		"application/grpc-web-text":         false,
		"application/grpcx":                 false,
		"application/json":                  false,
		"":                                  false,
		"text/html, application/grpc":       false,
		"application/grp":                   false,
		"application/x-www-form-urlencoded": false,
	} {
		r := httptest.NewRequest("POST", "/pkg.Svc/Method", nil)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if got := isGRPC(r); got != want {
			t.Errorf("isGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestGRPCError(t *testing.T) {
	w := httptest.NewRecorder()
	grpcError(w, grpcPermissionDenied, "100% sure: naïve\nline")
	h := w.Result().Header
	if w.Code != 200 || h.Get("Content-Type") != "application/grpc" || h.Get("Grpc-Status") != "7" ||
		h.Get("Grpc-Message") != "100%25 sure: na%C3%AFve%0Aline" || w.Body.Len() != 0 {
		t.Fatalf("%d %v %q", w.Code, h, w.Body.String())
	}
}
