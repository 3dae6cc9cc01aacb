package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-dev/stepup/cidr"
	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/internal/mfaconfig"
	"github.com/stepup-dev/stepup/mfa"
	"github.com/stepup-dev/stepup/rules"
)

// externalConfig parses yaml (under a minimal configuration) with files
// relative to dir.
func externalConfig(t *testing.T, dir, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "stepup.yaml")
	if err := os.WriteFile(path, []byte("networks:\n  corporate: [10.0.0.0/8]\n"+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRedirectVerifyKeys(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	write("cert.pem", selfSignedRSACert(t, key))
	jwk, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}})
	write("jwks.json", jwk)
	hmacRaw := "a-raw-shared-secret-of-at-least-32-bytes"
	write("raw.secret", []byte(hmacRaw+"\n"))
	write("b64.secret", []byte(base64.StdEncoding.EncodeToString([]byte(hmacRaw))))
	write("short.secret", []byte("short"))
	write("garbage.pem", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))

	rs := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "u"})
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u"}).SignedString([]byte(hmacRaw))
	for _, tc := range []struct {
		name, yaml string
		token      string
		wantErr    string
	}{
		{"raw secret", "secret: {file: raw.secret}", hs, ""},
		{"base64 secret", "secret: {file: b64.secret}\n      secret_encoding: base64", hs, ""},
		{"public key", "public_key_file: pub.pem", rs(""), ""},
		{"certificate", "public_key_file: cert.pem", rs(""), ""},
		{"jwks", "jwks_file: jwks.json", rs("k1"), ""},
		{"short secret", "secret: {file: short.secret}", "", "at least 32"},
		{"not a key", "public_key_file: garbage.pem", "", "public_key_file"},
		{"not a jwks", "jwks_file: raw.secret", "", "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := externalConfig(t, dir, "mfa:\n  redirect:\n    verify:\n      "+tc.yaml+"\n")
			o, err := redirectOptions(cfg, &app{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Continuer != nil {
				t.Error("a continuer without rules")
			}
			_, err = jwt.NewParser(jwt.WithValidMethods(o.Verify.Algorithms)).Parse(tc.token, o.Verify.Keyfunc)
			if err != nil {
				t.Fatalf("the configured key does not verify a good token: %v", err)
			}
		})
	}
}

func selfSignedRSACert(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mfa.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestDuoOptions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.pem"), []byte("nothing here"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := mfaconfig.Duo(externalConfig(t, dir, "mfa:\n  duo:\n    fallback: totp\n    username_claim: nickname\n    timeout: 3s\n"))
	if err != nil || o.Fallback != "totp" || len(o.UsernameClaims) != 1 || o.UsernameClaims[0] != "nickname" || o.Timeout != 3*time.Second || o.RootCAs != nil {
		t.Fatalf("%+v, %v", o, err)
	}
	if _, err := mfaconfig.Duo(externalConfig(t, dir, "mfa:\n  duo:\n    ca_file: empty.pem\n")); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Fatalf("a CA file without certificates: %v", err)
	}
}

// TestRulesContinuer: the adapter between the MFA step and the decision
// core maps the rules' outcome: continue, a rule's denial (with its
// message), a fault.
func TestRulesContinuer(t *testing.T) {
	for _, tc := range []struct {
		name, code string
		ip         string
		want       mfa.ContinueResult
		wantErr    bool
	}{
		{"continue", `function (u, c, cb) { cb(null, u, c); }`, "203.0.113.7", mfa.ContinueResult{}, false},
		{"the query reaches the rule", `function (u, c, cb) { if (c.request.query.code !== 'ok' || c.protocol !== 'redirect-callback') return cb(new UnauthorizedError('bad code')); cb(null, u, c); }`, "203.0.113.7", mfa.ContinueResult{}, false},
		{"denied", `function (u, c, cb) { cb(new UnauthorizedError('no, ' + u.user_id)); }`, "203.0.113.7", mfa.ContinueResult{Denied: true, Message: "no, auth0|alice", Rule: "r"}, false},
		{"fault", `function (u, c, cb) { while (true) {} }`, "203.0.113.7", mfa.ContinueResult{}, true},
		{"no address", `function (u, c, cb) { cb(null, u, c); }`, "unknown", mfa.ContinueResult{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := rules.New(rules.Options{Rules: []rules.Source{{Name: "r", Code: []byte(tc.code), Enabled: true}}, RuleTimeout: 50 * time.Millisecond, PipelineTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Close)
			set, err := cidr.New(map[string][]string{"corporate": {"10.0.0.0/8"}})
			if err != nil {
				t.Fatal(err)
			}
			s, err := extauthz.New(extauthz.Options{Networks: cidr.NewMatcher(set), Policy: extauthz.NewRulesPolicy(e, nil)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := rulesContinuer{authz: s}.Continue(context.Background(), mfa.ContinueInput{
				User: "auth0|alice", ClientID: "payroll", ReturnURL: "https://app.example/", Hostname: "app.example",
				ClientIP: tc.ip, Query: url.Values{"code": {"ok"}},
			})
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}
