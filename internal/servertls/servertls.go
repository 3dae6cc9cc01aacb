// Package servertls builds the TLS configuration of stepup's listeners,
// serving a certificate that follows its files.
package servertls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Config builds a server's TLS configuration from the certificate and key
// files, offering the protocols in alpn. With clientCAFile it requires and
// verifies client certificates (mTLS). The certificate is re-read when its
// file changes (checked at most every 10 s), so rotation needs no restart;
// a certificate that does not load keeps the current one in service.
func Config(certFile, keyFile, clientCAFile string, alpn []string) (*tls.Config, error) {
	cr, err := newCertReloader(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     alpn,
		GetCertificate: cr.get,
	}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_ca_file %s: no certificates found", clientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// certReloader serves the current certificate, reloading it when the
// files' modification time changes (checked at most every 10 s).
type certReloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	mod               atomic.Int64
	checked           atomic.Int64
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cur.Store(&cert)
	if fi, err := os.Stat(c.certFile); err == nil {
		c.mod.Store(fi.ModTime().UnixNano())
	}
	return nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := time.Now().Unix()
	if last := c.checked.Load(); now-last >= 10 && c.checked.CompareAndSwap(last, now) {
		if fi, err := os.Stat(c.certFile); err == nil && fi.ModTime().UnixNano() != c.mod.Load() {
			_ = c.load() // on error keep serving the current certificate
		}
	}
	return c.cur.Load(), nil
}
