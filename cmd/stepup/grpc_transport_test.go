package main

import (
	"bufio"
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
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stepup-dev/stepup/config"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files, plus a client certificate from another CA.
type testPKI struct {
	caFile, certFile, keyFile string
	caPool                    *x509.CertPool
	client, foreignClient     tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := testCA(t, "stepup test CA")
	other, otherKey := testCA(t, "another CA")
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server-key.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", ca.Raw)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	srvDER, srvKey := testLeaf(t, ca, caKey, "stepup", x509.ExtKeyUsageServerAuth)
	writePEM(t, p.certFile, "CERTIFICATE", srvDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.keyFile, "PRIVATE KEY", keyDER)
	der, key := testLeaf(t, ca, caKey, "envoy", x509.ExtKeyUsageClientAuth)
	p.client = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	der, key = testLeaf(t, other, otherKey, "envoy", x509.ExtKeyUsageClientAuth)
	p.foreignClient = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return p
}

func testCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func testLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serveGRPC runs the gRPC server `stepup serve` builds from cfg, with
// health SERVING, on a loopback port.
func serveGRPC(t *testing.T, cfg *config.Config) string {
	t.Helper()
	gs, err := newGRPCServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func healthCheck(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New(resp.GetStatus().String())
	}
	return nil
}

// TestGRPCTransportSecurity: server.grpc.tls serves TLS with ALPN h2 only;
// with client_ca_file it requires a client certificate from that CA
// (mTLS, as envoy/envoy-mtls.yaml configures Envoy's side).
func TestGRPCTransportSecurity(t *testing.T) {
	p := newTestPKI(t)
	tlsOnly, mtls := config.Default(), config.Default()
	tlsOnly.Server.GRPC.TLS = config.TLS{CertFile: p.certFile, KeyFile: p.keyFile}
	mtls.Server.GRPC.TLS = config.TLS{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: p.caFile}
	tlsAddr, mtlsAddr := serveGRPC(t, tlsOnly), serveGRPC(t, mtls)

	client := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: p.caPool, ServerName: "127.0.0.1", Certificates: certs, MinVersion: tls.VersionTLS12}
	}
	tests := []struct {
		name   string
		addr   string
		creds  credentials.TransportCredentials
		wantOK bool
	}{
		{"TLS: verified client", tlsAddr, credentials.NewTLS(client()), true},
		{"TLS: plaintext client refused", tlsAddr, insecure.NewCredentials(), false},
		{"mTLS: client certificate from the CA", mtlsAddr, credentials.NewTLS(client(p.client)), true},
		{"mTLS: no client certificate", mtlsAddr, credentials.NewTLS(client()), false},
		{"mTLS: client certificate from another CA", mtlsAddr, credentials.NewTLS(client(p.foreignClient)), false},
		{"mTLS: plaintext client refused", mtlsAddr, insecure.NewCredentials(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := healthCheck(tc.addr, tc.creds)
			if tc.wantOK && err != nil {
				t.Errorf("health check: %v", err)
			} else if !tc.wantOK && err == nil {
				t.Error("health check succeeded, want the connection refused")
			}
		})
	}

	// ALPN: h2 is negotiated; a client that offers only http/1.1 is
	// refused at the handshake rather than served the wrong protocol.
	for _, tc := range []struct {
		protos []string
		want   string // negotiated protocol; "" = handshake fails
	}{
		{[]string{"h2"}, "h2"},
		{[]string{"http/1.1", "h2"}, "h2"},
		{[]string{"http/1.1"}, ""},
	} {
		c := client()
		c.NextProtos = tc.protos
		conn, err := tls.Dial("tcp", tlsAddr, c)
		if err != nil {
			if tc.want != "" {
				t.Errorf("ALPN %v: %v", tc.protos, err)
			}
			continue
		}
		got := conn.ConnectionState().NegotiatedProtocol
		conn.Close()
		if got != tc.want {
			t.Errorf("ALPN %v: negotiated %q, want %q", tc.protos, got, tc.want)
		}
	}
}

// TestGRPCKeepalivePings: stepup tolerates HTTP/2 pings spaced by more
// than server.grpc.keepalive_min_time (here 200ms, far below the 5s
// default, so the default would fail this), even on a connection without
// streams (Envoy pings idle connections), and still answers a flood of
// pings with grpc-go's too_many_pings GOAWAY.
func TestGRPCKeepalivePings(t *testing.T) {
	const minTime = 200 * time.Millisecond
	cfg := config.Default()
	cfg.Server.GRPC.KeepaliveMinTime = config.Duration(minTime)
	addr := serveGRPC(t, cfg)

	tests := []struct {
		name       string
		interval   time.Duration
		pings      int
		wantGoAway bool
	}{
		{"at twice the configured interval, no stream", 2 * minTime, 5, false},
		// Well under keepalive_min_time, but read between pings: the
		// server closes the connection right after its GOAWAY, and pings
		// it has not read by then would make it reset the connection,
		// which can drop the GOAWAY before the test reads it.
		{"a flood", 10 * time.Millisecond, 6, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(conn, bufio.NewReader(conn))
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			// The reader acknowledges settings while this goroutine sends
			// pings: a Framer's writes must not interleave.
			var wmu sync.Mutex
			frames := make(chan http2.Frame, 64)
			go func() {
				defer close(frames)
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
						wmu.Lock()
						_ = fr.WriteSettingsAck()
						wmu.Unlock()
					}
					frames <- f
				}
			}()
			acks, goAway := 0, (*http2.GoAwayFrame)(nil)
			drain := func(wait time.Duration) {
				deadline := time.After(wait)
				for {
					select {
					case f, ok := <-frames:
						if !ok {
							return
						}
						switch f := f.(type) {
						case *http2.PingFrame:
							if f.IsAck() {
								acks++
							}
						case *http2.GoAwayFrame:
							goAway = f
						}
					case <-deadline:
						return
					}
				}
			}
			for i := range tc.pings {
				if goAway != nil {
					break // the server said goodbye: send no more
				}
				wmu.Lock()
				err := fr.WritePing(false, [8]byte{byte(i + 1)})
				wmu.Unlock()
				if err != nil {
					break // the server hung up: judged below
				}
				drain(tc.interval)
			}
			drain(time.Second)
			switch {
			case tc.wantGoAway && (goAway == nil || goAway.ErrCode != http2.ErrCodeEnhanceYourCalm):
				t.Errorf("after a ping flood: GOAWAY %v, want ENHANCE_YOUR_CALM", goAway)
			case !tc.wantGoAway && goAway != nil:
				t.Errorf("pings every %v (keepalive_min_time %v) got GOAWAY %v %q", tc.interval, minTime, goAway.ErrCode, goAway.DebugData())
			case !tc.wantGoAway && acks != tc.pings:
				t.Errorf("%d of %d pings acknowledged", acks, tc.pings)
			}
		})
	}
}
