package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Certs is the TLS certificate of the listeners (--tls-cert and
// --tls-key), which SIGHUP reloads: connections made after a reload get
// the new certificate, and open ones keep theirs.
type Certs struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// LoadCert loads the certificate and key; both files or neither (nil,
// nil: no TLS).
func LoadCert(certFile, keyFile string) (*Certs, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	c := &Certs{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the files; on an error the certificate in use stays.
func (c *Certs) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: --tls-cert %s --tls-key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert.Store(&cert)
	return nil
}

// Reload reloads the files and logs the outcome (SIGHUP).
func (c *Certs) Reload(log *slog.Logger) {
	if err := c.load(); err != nil {
		log.Error("TLS certificate reload failed, the old one stays in use", "err", err)
		return
	}
	log.Info("TLS certificate reloaded", "cert", c.certFile)
}

// TLSConfig returns a server configuration that serves the certificate loaded
// last; nil for no TLS.
func (c *Certs) TLSConfig() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cert.Load(), nil
		},
	}
}
