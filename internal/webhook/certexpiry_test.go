package webhook

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podgate/podgate/internal/devcerts"
)

func TestCertExpiry(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcerts.Ensure(devcerts.Options{Dir: dir, Service: "podgate-injector", Namespace: "podgate-system", Validity: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(dir, devcerts.CertFile)
	notAfter, err := certNotAfter(crt)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		now   time.Time
		level zapcore.Level
		logs  int
	}{
		{"fresh", notAfter.Add(-CertWarnBefore - time.Hour), zapcore.InfoLevel, 0},
		{"expiring", notAfter.Add(-24 * time.Hour), zapcore.WarnLevel, 1},
		{"expired", notAfter.Add(time.Minute), zapcore.ErrorLevel, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			g, _ := NewCertExpiryGauge(nil)
			c := &CertExpiry{Source: crt, NotAfter: FileNotAfter(crt), WarnBefore: CertWarnBefore, Gauge: g, Log: zap.New(core), Now: func() time.Time { return tc.now }}
			got, err := c.Check()
			if err != nil || !got.Equal(notAfter) {
				t.Fatalf("Check = %v, %v; want %v", got, err, notAfter)
			}
			if v := testutil.ToFloat64(g); v != float64(notAfter.Unix()) {
				t.Fatalf("gauge = %v, want %v", v, notAfter.Unix())
			}
			if logs.Len() != tc.logs {
				t.Fatalf("%d log lines, want %d: %v", logs.Len(), tc.logs, logs.All())
			}
			if tc.logs > 0 && logs.All()[0].Level != tc.level {
				t.Fatalf("level %v, want %v", logs.All()[0].Level, tc.level)
			}
		})
	}
	if err := os.WriteFile(crt, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, _ := NewCertExpiryGauge(prometheus.NewRegistry())
	if _, err := (&CertExpiry{Source: crt, NotAfter: FileNotAfter(crt), Gauge: g, Log: zap.NewNop(), Now: time.Now}).Check(); err == nil {
		t.Fatal("garbage certificate accepted")
	}
}
