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
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key,
// as PEM files in dir, and returns their paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bucketd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRESPOverTLS: with --tls-cert and --tls-key, the RESP listener speaks
// TLS (rediss://): redis-cli --tls and go-redis with a tls.Config verify
// the certificate and run commands, transactions included; a plain-text
// client gets no Redis reply.
func TestRESPOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	p := startBinary(t, "--data", filepath.Join(dir, "b.db"), "--tls-cert", certFile, "--tls-key", keyFile)

	rdb := redis.NewClient(&redis.Options{Addr: p.respAddr, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	assert.Equal(t, "PONG", rdb.Ping(ctx).Val())
	cmds, err := rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Do(ctx, "CL.THROTTLE", "k", "9", "1", "60")
		pl.Do(ctx, "CL.THROTTLE", "k", "9", "1", "60")
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 2)
	assert.Equal(t, []any{int64(0), int64(10), int64(8), int64(-1), int64(120)}, cmds[1].(*redis.Cmd).Val())

	opt, err := redis.ParseURL("rediss://" + p.respAddr)
	require.NoError(t, err)
	opt.TLSConfig.RootCAs = pool
	viaURL := redis.NewClient(opt)
	defer viaURL.Close()
	assert.Equal(t, "PONG", viaURL.Ping(ctx).Val(), "a rediss:// URL")

	rcli := needRedisCLI(t)
	host, port, err := net.SplitHostPort(p.respAddr)
	require.NoError(t, err)
	out, err := exec.CommandContext(ctx, rcli, "--tls", "--cacert", certFile, "-h", host, "-p", port, "HGET", "k", "policy").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "(cl.throttle)", strings.TrimSpace(string(out)))
	out, err = exec.CommandContext(ctx, rcli, "--tls", "--insecure", "-h", host, "-p", port, "PING").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "PONG", strings.TrimSpace(string(out)))

	// Plain text: the server reads it as a TLS handshake and fails it.
	nc, err := net.DialTimeout("tcp", p.respAddr, 10*time.Second)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = nc.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	buf := make([]byte, 64)
	n, _ := nc.Read(buf)
	assert.NotContains(t, string(buf[:n]), "PONG")

	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestTLSFlagsGoTogether: one of --tls-cert and --tls-key alone is an
// error at start, exit 1.
func TestTLSFlagsGoTogether(t *testing.T) {
	dir := t.TempDir()
	certFile, _, _ := selfSigned(t, dir)
	code, _, stderr := runBinary(t, dir, nil, "--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0", "--tls-cert", certFile)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "--tls-cert and --tls-key go together")
}
