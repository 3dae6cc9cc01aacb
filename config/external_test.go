package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExternalMFADefaults(t *testing.T) {
	c := Default()
	if c.MFA.Duo.Fallback != "none" || c.MFA.Duo.Timeout.D() != 10*time.Second || c.MFA.Duo.UsernameClaim != "" || c.MFA.Duo.CAFile != "" {
		t.Errorf("mfa.duo = %+v", c.MFA.Duo)
	}
	if c.MFA.Redirect.Verify != nil {
		t.Errorf("mfa.redirect.verify is on by default: %+v", c.MFA.Redirect.Verify)
	}
	if c.Sessions.StateTTL.D() != time.Hour {
		t.Errorf("state ttl = %v, want 1h", c.Sessions.StateTTL)
	}
}

func TestExternalMFAValidation(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(pem, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STEPUP_TEST_MFA_SECRET", "s3cret")
	base := "networks:\n  corporate: [10.0.0.0/8]\n"
	for _, tc := range []struct {
		name, yaml string
		wantErr    []string // substrings; none = valid
	}{
		{"duo settings", "mfa:\n  duo:\n    ca_file: " + pem + "\n    fallback: totp\n    username_claim: nickname\n    timeout: 5s\n", nil},
		{"verify with an env secret", "mfa:\n  redirect:\n    verify:\n      secret: {env: STEPUP_TEST_MFA_SECRET}\n      secret_encoding: base64\n      issuer: https://mfa.example/\n      audience: stepup\n", nil},
		{"verify with a public key", "mfa:\n  redirect:\n    verify:\n      public_key_file: " + pem + "\n", nil},
		{"bad duo settings", "mfa:\n  duo:\n    ca_file: /nonexistent/ca.pem\n    fallback: sms\n    timeout: 2m\n    username_claim: ' email'\n",
			[]string{"mfa.duo.fallback:", "mfa.duo.ca_file:", "mfa.duo.timeout:", "mfa.duo.username_claim:"}},
		{"verify without a key", "mfa:\n  redirect:\n    verify:\n      issuer: x\n", []string{"mfa.redirect.verify: set exactly one"}},
		{"verify with two keys", "mfa:\n  redirect:\n    verify:\n      secret: abc\n      jwks_file: " + pem + "\n", []string{"mfa.redirect.verify: set exactly one"}},
		{"verify with a missing file and a bad encoding", "mfa:\n  redirect:\n    verify:\n      jwks_file: /nonexistent/jwks.json\n      secret_encoding: hex\n      leeway: 1h\n",
			[]string{"mfa.redirect.verify.jwks_file:", "mfa.redirect.verify.secret_encoding:", "mfa.redirect.verify.leeway:"}},
		{"verify with an unset env", "mfa:\n  redirect:\n    verify:\n      secret: {env: STEPUP_TEST_MFA_UNSET}\n", []string{"mfa.redirect.verify.secret: environment variable STEPUP_TEST_MFA_UNSET is not set"}},
		{"unknown key", "mfa:\n  duo:\n    fallbak: totp\n", []string{`mfa.duo: unknown key "fallbak" (did you mean "fallback"?)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(base + tc.yaml))
			if err == nil {
				err = c.Validate()
			}
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("errors lack %q:\n%v", want, err)
				}
			}
		})
	}
}
