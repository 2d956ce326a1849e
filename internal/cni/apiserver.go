package cni

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

// APIAccess is what the node agent writes for the plugin (mode 0600, next to the conflist) so the
// plugin can read a pod's annotations when the runtime does not pass them: the agent's own
// service account token, which may only get pods.
type APIAccess struct {
	// Server is the API server's base URL as seen from the node.
	Server string `json:"server"`
	// Token is a bearer token; CA is the PEM bundle that signs the API server's certificate.
	Token string `json:"token"`
	CA    string `json:"ca"`
}

// maxPodBytes bounds how much of the API server's answer the plugin reads.
const maxPodBytes = 4 << 20

// FetchPodAnnotations reads one pod's annotations from the API server with the access in file.
func FetchPodAnnotations(ctx context.Context, file, namespace, name string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading apiAccess: %w", err)
	}
	var a APIAccess
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("apiAccess %s: %w", file, err)
	}
	if a.Server == "" || a.Token == "" {
		return nil, fmt.Errorf("apiAccess %s: server and token are required", file)
	}
	pool := x509.NewCertPool()
	if a.CA != "" && !pool.AppendCertsFromPEM([]byte(a.CA)) {
		return nil, fmt.Errorf("apiAccess %s: ca holds no PEM certificate", file)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	u := a.Server + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET pod: %s", resp.Status)
	}
	var pod struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	body := io.LimitReader(resp.Body, maxPodBytes+1)
	dec := json.NewDecoder(body)
	if err := dec.Decode(&pod); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("decoding pod: answer truncated or over %d bytes", maxPodBytes)
		}
		return nil, fmt.Errorf("decoding pod: %w", err)
	}
	if pod.Metadata.Annotations == nil {
		pod.Metadata.Annotations = map[string]string{}
	}
	return pod.Metadata.Annotations, nil
}
