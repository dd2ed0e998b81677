package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/storage/redisstore/redistest"
)

// writeCerts writes a CA and a server certificate for 127.0.0.1 signed by
// it, as PEM files in dir: ca.pem, server.pem, server.key.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bucketd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	require.NoError(t, err)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "EC PRIVATE KEY", keyDER)
}

// TestRedisStoreTLS: --store rediss:// talks TLS to Redis and verifies its
// certificate against the system's roots (here SSL_CERT_FILE, the test's
// CA); a server it cannot verify is refused at start.
func TestRedisStoreTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeCerts(t, dir)
	srv := redistest.StartTLS(t, cert, key)

	code, _, stderr := runBinary(t, dir, []string{"SSL_CERT_FILE=" + filepath.Join(dir, "nothing.pem")},
		"--store", srv.URL, "--store-timeout", "2s", "--http-addr", "127.0.0.1:0", "--resp-addr", "")
	assert.Equal(t, 1, code, "an unverified server is refused")
	assert.Contains(t, stderr, "certificate")

	p := startBinaryIn(t, dir, []string{"SSL_CERT_FILE=" + ca}, "--store", srv.URL, "--store-timeout", "2s",
		"--capacity", "1", "--rate", "1/h")
	code, _, _ = take(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 200, code)
	code, _, _ = take(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 429, code, "the bucket is in the TLS Redis")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
