package rules

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

var testKeys = sync.OnceValue(func() map[string]string {
	pemOf := func(bits int) (priv, pub string) {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
			string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	}
	priv, pub := pemOf(2048)
	small, _ := pemOf(1024)
	return map[string]string{"PRIVATE": priv, "PUBLIC": pub, "SMALL": small, "SECRET": "shhh-its-a-secret"}
})

// TestJSONWebToken checks the jsonwebtoken shim against node-jsonwebtoken's
// documented behaviour and messages. The clock is fixedNow.
func TestJSONWebToken(t *testing.T) {
	now := fixedNow.Unix()
	for _, tc := range []struct {
		name    string
		code    string
		want    any
		wantErr string
	}{
		{name: "HS256 round trip", code: `
var token = jwt.sign({sub: 'u1', role: 'admin'}, configuration.SECRET);
var d = jwt.verify(token, configuration.SECRET);
return [d.sub, d.role, d.iat, jwt.decode(token, {complete: true}).header];`,
			want: []any{"u1", "admin", now, map[string]any{"alg": "HS256", "typ": "JWT"}}},
		{name: "expiresIn string", code: `
var d = jwt.verify(jwt.sign({}, configuration.SECRET, {expiresIn: '1h'}), configuration.SECRET);
return d.exp - d.iat;`, want: int64(3600)},
		{name: "expiresIn number and claims options", code: `
var t = jwt.sign({a: 1}, configuration.SECRET, {expiresIn: 60, audience: 'aud', issuer: 'iss', subject: 'sub', jwtid: 'id', keyid: 'k1', notBefore: '-10s'});
var c = jwt.decode(t, {complete: true});
return [c.payload.exp - c.payload.iat, c.payload.aud, c.payload.iss, c.payload.sub, c.payload.jti, c.payload.nbf - c.payload.iat, c.header.kid];`,
			want: []any{int64(60), "aud", "iss", "sub", "id", int64(-10), "k1"}},
		{name: "noTimestamp", code: `return jwt.decode(jwt.sign({a: 1}, configuration.SECRET, {noTimestamp: true})).iat === undefined;`, want: true},
		{name: "wrong secret", code: `jwt.verify(jwt.sign({}, configuration.SECRET), 'other');`, wantErr: "JsonWebTokenError: invalid signature"},
		{name: "error classes", code: `
try { jwt.verify(jwt.sign({}, configuration.SECRET), 'other'); } catch (e) {
  return [e instanceof jwt.JsonWebTokenError, e instanceof Error, e.name];
}`, want: []any{true, true, "JsonWebTokenError"}},
		{name: "expired", code: `jwt.verify(jwt.sign({exp: ` + fmt.Sprint(now-10) + `}, configuration.SECRET), configuration.SECRET);`, wantErr: "TokenExpiredError: jwt expired"},
		{name: "expired error details", code: `
try { jwt.verify(jwt.sign({exp: ` + fmt.Sprint(now-10) + `}, configuration.SECRET), configuration.SECRET); } catch (e) {
  return [e instanceof jwt.TokenExpiredError, e instanceof jwt.JsonWebTokenError, e.expiredAt.toISOString()];
}`, want: []any{true, true, fixedNow.Add(-10 * time.Second).Format("2006-01-02T15:04:05.000Z")}},
		{name: "clockTolerance", code: `return jwt.verify(jwt.sign({exp: ` + fmt.Sprint(now-10) + `}, configuration.SECRET), configuration.SECRET, {clockTolerance: 30}).exp;`, want: now - 10},
		{name: "ignoreExpiration", code: `return !!jwt.verify(jwt.sign({exp: 1}, configuration.SECRET), configuration.SECRET, {ignoreExpiration: true});`, want: true},
		{name: "not before", code: `jwt.verify(jwt.sign({}, configuration.SECRET, {notBefore: 60}), configuration.SECRET);`, wantErr: "NotBeforeError: jwt not active"},
		{name: "maxAge", code: `jwt.verify(jwt.sign({iat: ` + fmt.Sprint(now-7200) + `}, configuration.SECRET), configuration.SECRET, {maxAge: '1h'});`, wantErr: "TokenExpiredError: maxAge exceeded"},
		{name: "audience mismatch", code: `jwt.verify(jwt.sign({aud: 'a'}, configuration.SECRET), configuration.SECRET, {audience: 'b'});`, wantErr: "JsonWebTokenError: jwt audience invalid. expected: b"},
		{name: "audience list", code: `jwt.verify(jwt.sign({aud: ['x', 'y']}, configuration.SECRET), configuration.SECRET, {audience: ['b', 'c']});`, wantErr: "JsonWebTokenError: jwt audience invalid. expected: b or c"},
		{name: "audience ok", code: `return jwt.verify(jwt.sign({aud: ['x', 'y']}, configuration.SECRET), configuration.SECRET, {audience: ['b', 'y']}).aud;`, want: []any{"x", "y"}},
		{name: "audience regexp", code: `return jwt.verify(jwt.sign({aud: 'urn:app'}, configuration.SECRET), configuration.SECRET, {audience: /^urn:/}).aud;`, want: "urn:app"},
		{name: "issuer", code: `jwt.verify(jwt.sign({iss: 'a'}, configuration.SECRET), configuration.SECRET, {issuer: 'b'});`, wantErr: "JsonWebTokenError: jwt issuer invalid. expected: b"},
		{name: "issuer list", code: `return jwt.verify(jwt.sign({iss: 'a'}, configuration.SECRET), configuration.SECRET, {issuer: ['b', 'a']}).iss;`, want: "a"},
		{name: "subject", code: `jwt.verify(jwt.sign({sub: 'a'}, configuration.SECRET), configuration.SECRET, {subject: 'b'});`, wantErr: "JsonWebTokenError: jwt subject invalid. expected: b"},
		{name: "jwtid", code: `jwt.verify(jwt.sign({jti: 'a'}, configuration.SECRET), configuration.SECRET, {jwtid: 'b'});`, wantErr: "JsonWebTokenError: jwt jwtid invalid. expected: b"},
		{name: "algorithms restriction", code: `jwt.verify(jwt.sign({}, configuration.SECRET), configuration.SECRET, {algorithms: ['HS512']});`, wantErr: "JsonWebTokenError: invalid algorithm"},
		{name: "HS512", code: `
var c = jwt.verify(jwt.sign({a: 1}, configuration.SECRET, {algorithm: 'HS512'}), configuration.SECRET, {complete: true, algorithms: ['HS512']});
return [c.header.alg, c.payload.a];`, want: []any{"HS512", int64(1)}},
		{name: "malformed", code: `jwt.verify('abc', configuration.SECRET);`, wantErr: "JsonWebTokenError: jwt malformed"},
		{name: "invalid token", code: `jwt.verify('a.b.c', configuration.SECRET);`, wantErr: "JsonWebTokenError: invalid token"},
		{name: "must be provided", code: `jwt.verify('', configuration.SECRET);`, wantErr: "JsonWebTokenError: jwt must be provided"},
		{name: "must be a string", code: `jwt.verify(42, configuration.SECRET);`, wantErr: "JsonWebTokenError: jwt must be a string"},
		{name: "secret required", code: `jwt.verify(jwt.sign({}, configuration.SECRET), '');`, wantErr: "JsonWebTokenError: secret or public key must be provided"},
		{name: "alg none refused", code: `
var t = Buffer.from(JSON.stringify({alg: 'none', typ: 'JWT'})).toString('base64url') + '.' + Buffer.from(JSON.stringify({sub: 'admin'})).toString('base64url') + '.';
jwt.verify(t, configuration.SECRET);`, wantErr: "JsonWebTokenError: jwt signature is required"},
		{name: "alg none refused even when allowed", code: `
var t = Buffer.from(JSON.stringify({alg: 'none', typ: 'JWT'})).toString('base64url') + '.' + Buffer.from(JSON.stringify({sub: 'admin'})).toString('base64url') + '.';
jwt.verify(t, undefined, {algorithms: ['none']});`, wantErr: "JsonWebTokenError: jwt signature is required"},
		{name: "alg none with a forged signature", code: `
var t = Buffer.from(JSON.stringify({alg: 'none', typ: 'JWT'})).toString('base64url') + '.' + Buffer.from(JSON.stringify({sub: 'admin'})).toString('base64url') + '.c2ln';
jwt.verify(t, configuration.SECRET);`, wantErr: "JsonWebTokenError: invalid algorithm"},
		{name: "sign none refused", code: `jwt.sign({}, null, {algorithm: 'none'});`, wantErr: `Error: algorithm "none" is not supported`},
		{name: "sign unknown algorithm", code: `jwt.sign({}, 's', {algorithm: 'XX'});`, wantErr: `Error: "algorithm" must be a valid string enum value`},
		{name: "sign without secret", code: `jwt.sign({}, '');`, wantErr: "Error: secretOrPrivateKey must have a value"},
		{name: "bad expiresIn", code: `jwt.sign({}, 's', {expiresIn: 'soon'});`, wantErr: `Error: "expiresIn" should be a number of seconds or string representing a timespan eg: "1d", "20h", 60`},
		{name: "unknown option", code: `jwt.sign({}, 's', {foo: 1});`, wantErr: `Error: "foo" is not allowed in "options"`},
		{name: "exp conflict", code: `jwt.sign({exp: 1}, 's', {expiresIn: 10});`, wantErr: `Error: Bad "options.expiresIn" option the payload already has an "exp" property.`},
		{name: "header cannot switch the algorithm", code: `jwt.sign({}, 's', {header: {alg: 'none'}});`, wantErr: `Error: header.alg "none" does not match the algorithm "HS256"`},
		{name: "header fields", code: `return jwt.decode(jwt.sign({}, 's', {header: {x5t: 'abc', alg: 'HS256'}}), {complete: true}).header;`,
			want: map[string]any{"alg": "HS256", "typ": "JWT", "x5t": "abc"}},
		{name: "__proto__ claim stays a claim", code: `return jwt.decode(jwt.sign(JSON.parse('{"__proto__": {"admin": true}, "a": 1}'), 's')).__proto__.admin;`, want: true},
		{name: "string payload", code: `var t = jwt.sign('hello', 's'); return [jwt.decode(t), jwt.verify(t, 's')];`, want: []any{"hello", "hello"}},
		{name: "string payload with expiresIn", code: `jwt.sign('hello', 's', {expiresIn: 10});`, wantErr: "Error: invalid expiresIn option for string payload"},
		{name: "Buffer secret", code: `return jwt.verify(jwt.sign({a: 1}, Buffer.from('c2VjcmV0', 'base64')), 'secret').a;`, want: int64(1)},
		{name: "callbacks", code: `
var out = [];
jwt.sign({a: 2}, 's', {}, function (err, token) {
  out.push(err);
  jwt.verify(token, 's', function (err2, decoded) { out.push(err2, decoded.a); });
  jwt.verify(token, 'wrong', function (err3) { out.push(err3.message); });
});
return out;`, want: []any{nil, nil, int64(2), "invalid signature"}},
		{name: "secret callback", code: `
var out;
jwt.verify(jwt.sign({a: 3}, 's'), function (header, cb) { cb(null, header.alg === 'HS256' ? 's' : 'x'); }, function (err, d) { out = d.a; });
return out;`, want: int64(3)},
		{name: "decode", code: `
var t = jwt.sign({a: 1}, 's');
return [jwt.decode(t).a, jwt.decode(t, {complete: true}).header.alg, typeof jwt.decode(t, {complete: true}).signature, jwt.decode('garbage'), jwt.decode('a.b')];`,
			want: []any{int64(1), "HS256", "string", nil, nil}},
		{name: "RS256 round trip", code: `
var t = jwt.sign({sub: 'rs'}, configuration.PRIVATE, {algorithm: 'RS256', keyid: 'key-1'});
return [jwt.verify(t, configuration.PUBLIC).sub, jwt.verify(t, configuration.PUBLIC, {algorithms: ['RS256']}).sub, jwt.decode(t, {complete: true}).header];`,
			want: []any{"rs", "rs", map[string]any{"alg": "RS256", "typ": "JWT", "kid": "key-1"}}},
		{name: "RS256 verify with private key", code: `return jwt.verify(jwt.sign({sub: 'rs'}, configuration.PRIVATE, {algorithm: 'RS256'}), configuration.PRIVATE).sub;`, want: "rs"},
		{name: "RS256 wrong key", code: `jwt.verify(jwt.sign({}, configuration.PRIVATE, {algorithm: 'RS256'}), configuration.SECRET);`, wantErr: "JsonWebTokenError: invalid algorithm"},
		{name: "RS256 needs an RSA key", code: `jwt.sign({}, 'plain secret', {algorithm: 'RS256'});`, wantErr: "Error: secretOrPrivateKey must be an asymmetric key when using RS256"},
		{name: "HS256 refuses a private key", code: `jwt.sign({}, configuration.PRIVATE);`, wantErr: "Error: secretOrPrivateKey must be a symmetric key when using HS256"},
		{name: "RS256 small key", code: `jwt.sign({}, configuration.SMALL, {algorithm: 'RS256'});`, wantErr: "Error: secretOrPrivateKey has a minimum key size of 2048 bits for RS256"},
		{name: "key confusion: HS256 token signed with the public key", code: `
var t = jwt.sign({sub: 'admin'}, Buffer.from(configuration.PUBLIC));
jwt.verify(t, configuration.PUBLIC);`, wantErr: "JsonWebTokenError: invalid algorithm"},
		{name: "key confusion with HS256 allowed", code: `
var t = jwt.sign({sub: 'admin'}, Buffer.from(configuration.PUBLIC));
jwt.verify(t, configuration.PUBLIC, {algorithms: ['HS256']});`, wantErr: "JsonWebTokenError: secretOrPublicKey must be a symmetric key when using HS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsEval(t, Options{Configuration: testKeys()}, "var jwt = require('jsonwebtoken');\n"+tc.code)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want error %q", got, tc.wantErr)
				}
				if s := err.Name + ": " + err.Message; s != tc.wantErr {
					t.Fatalf("error %q, want %q", s, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestJSONWebTokenInterop checks tokens against golang-jwt directly, so the
// shim is not only consistent with itself.
func TestJSONWebTokenInterop(t *testing.T) {
	secret := testKeys()["SECRET"]
	got, rerr := jsEval(t, Options{Configuration: testKeys()}, `
var jwt = require('jsonwebtoken');
return jwt.sign({sub: 'js', n: 1}, configuration.SECRET, {expiresIn: '10m', issuer: 'stepup'});`)
	if rerr != nil {
		t.Fatal(rerr)
	}
	tok, err := jwt.Parse(got.(string), func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return fixedNow }), jwt.WithIssuer("stepup"))
	if err != nil {
		t.Fatalf("golang-jwt rejects the JS token: %v", err)
	}
	claims := tok.Claims.(jwt.MapClaims)
	if claims["sub"] != "js" || claims["exp"].(float64)-claims["iat"].(float64) != 600 {
		t.Errorf("claims = %v", claims)
	}

	goTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "go", "exp": fixedNow.Add(time.Minute).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	got, rerr = jsEval(t, Options{Configuration: map[string]string{"SECRET": secret, "TOKEN": goTok}}, `
var jwt = require('jsonwebtoken');
return jwt.verify(configuration.TOKEN, configuration.SECRET).sub;`)
	if rerr != nil || got != "go" {
		t.Fatalf("got %v, %v", got, rerr)
	}
	// Tampering with the payload breaks the signature.
	parts := strings.Split(goTok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999}`))
	_, rerr = jsEval(t, Options{Configuration: map[string]string{"SECRET": secret, "TOKEN": strings.Join(parts, ".")}}, `
var jwt = require('jsonwebtoken');
return jwt.verify(configuration.TOKEN, configuration.SECRET).sub;`)
	if rerr == nil || rerr.Message != "invalid signature" {
		t.Fatalf("tampered token: %v", rerr)
	}
}

func TestParseMs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1h", 3600000, true}, {"30m", 1800000, true}, {"7d", 604800000, true}, {"2 days", 172800000, true},
		{"1.5h", 5400000, true}, {"100", 100, true}, {"10s", 10000, true}, {"1y", 31557600000, true},
		{"-10s", -10000, true}, {"1w", 604800000, true}, {"soon", 0, false}, {"", 0, false}, {"1 lightyear", 0, false},
	} {
		got, ok := parseMs(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseMs(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
