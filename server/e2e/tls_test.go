package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeCert writes a fresh self-signed certificate for 127.0.0.1 and its
// key as PEM files in dir (replacing any), and returns the certificate.
func writeCert(t *testing.T, dir, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

// needCurl returns curl's path; without it the test is skipped, except
// in CI (CI=true), where it fails.
func needCurl(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("curl is required in CI: %v", err)
		}
		t.Skipf("curl is not installed: %v", err)
	}
	return path
}

// curl runs curl with args and returns its standard output; it fails the
// test if curl fails.
func curl(t *testing.T, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"-sS", "--max-time", "10"}, args...)...).Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "curl %s: %s", strings.Join(args, " "), stderr)
	return string(out)
}

var tlsReloadedRE = regexp.MustCompile(`msg="TLS certificate reloaded"`)

// TestBinaryHTTPS serves HTTP over TLS with --tls-cert and --tls-key:
// curl with the certificate as its CA takes and reads the JSON API, plain
// HTTP is not answered, and SIGHUP loads a new certificate for new
// connections.
func TestBinaryHTTPS(t *testing.T) {
	curlPath := needCurl(t)
	dir := t.TempDir()
	first := writeCert(t, dir, "first")
	p := startBinary(t, "--data", filepath.Join(dir, "bucketd.db"), "--capacity", "2", "--rate", "1/1000d",
		"--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"))
	assert.Contains(t, p.startLine, "tls=true")
	base := "https://" + p.httpAddr
	caFile := filepath.Join(dir, "ca-first.pem")
	require.NoError(t, os.Rename(filepath.Join(dir, "cert.pem"), caFile))
	require.NoError(t, os.Link(caFile, filepath.Join(dir, "cert.pem")))

	out := curl(t, curlPath, "--cacert", caFile, "-w", " %{http_code}", base+"/joe")
	assert.Equal(t, `{"detail":"OK"} 200`, out)
	out = curl(t, curlPath, "--cacert", caFile, "-w", " %{http_code}", "-H", "Content-Type: application/json",
		"-d", `{"key":"joe"}`, base+"/v1/take")
	assert.Contains(t, out, `"remaining":0,`)
	assert.True(t, strings.HasSuffix(out, " 200"), out)
	out = curl(t, curlPath, "-k", "-w", " %{http_code}", base+"/joe")
	assert.Equal(t, `{"detail":"Too Many Requests"} 429`, out)
	out = curl(t, curlPath, "--cacert", caFile, "-w", " %{http_code}", "-H", "Content-Type: application/json",
		"-d", `{"key":"x","key":"y"}`, base+"/v1/take")
	assert.Equal(t, `{"error":"duplicate field \"key\"","field":"key"} 400`, out, "strict JSON over TLS too")

	// Without TLS, no answer: the server speaks only TLS on this port.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + p.httpAddr + "/ann")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.NotEqual(t, 200, resp.StatusCode, "plain HTTP answered: %s", body)
	}

	// SIGHUP: new connections get the new certificate.
	require.NoError(t, os.Remove(filepath.Join(dir, "cert.pem")))
	second := writeCert(t, dir, "second")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	p.log.wait(t, tlsReloadedRE)
	conn, err := tls.Dial("tcp", p.httpAddr, &tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err)
	got := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	assert.Equal(t, second.SerialNumber, got.SerialNumber, "the reloaded certificate")
	assert.NotEqual(t, first.SerialNumber, got.SerialNumber)
	out = curl(t, curlPath, "--cacert", filepath.Join(dir, "cert.pem"), "-w", " %{http_code}", base+"/healthz")
	assert.True(t, strings.HasSuffix(out, " 200"), out)

	// A TLS client that connects and says nothing does not hold shutdown.
	silent := rawConn(t, p.httpAddr)
	start := time.Now()
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
	assert.Less(t, time.Since(start), shutdownBound)
	b, err := io.ReadAll(silent)
	// Closed: at EOF if bucketd had accepted it, or reset by the kernel if
	// it was still in the listen queue when the listener closed.
	if !errors.Is(err, syscall.ECONNRESET) {
		assert.NoError(t, err)
	}
	assert.Empty(t, b)
}

// TestBinaryTLSFlags checks that a half-given or bad certificate is a clear
// error, exit 1, before anything is served.
func TestBinaryTLSFlags(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "x")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.pem"), []byte("not a certificate"), 0o600))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "cert.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "key.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", "bad.pem", "--tls-key", "key.pem"}, "tls: --tls-cert bad.pem --tls-key key.pem: tls: failed to find any PEM data in certificate input"},
		{[]string{"--tls-cert", "missing.pem", "--tls-key", "key.pem"}, "no such file or directory"},
	} {
		code, _, stderr := runBinary(t, dir, nil, append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", ""}, tt.args...)...)
		assert.Equal(t, 1, code, "%v", tt.args)
		assert.Contains(t, stderr, tt.want, "%v", tt.args)
		_, err := os.Stat(filepath.Join(dir, "bucketd.db"))
		assert.True(t, os.IsNotExist(err), "no data file made: %v", tt.args)
	}
}
