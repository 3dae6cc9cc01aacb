package rules

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/dop251/goja"
	"github.com/golang-jwt/jwt/v5"
)

// The jsonwebtoken module (node-jsonwebtoken 9 API) over golang-jwt:
// sign, verify and decode with HS256/384/512 and RS256/384/512, the same
// option names, validation messages and error classes (JsonWebTokenError,
// TokenExpiredError, NotBeforeError). Differences, all failing closed:
// unsigned tokens (alg "none") never verify and cannot be signed; other
// algorithms (ES*, PS*) are refused; sign() calls its callback
// synchronously.
var jsonwebtokenModule = nativeModule{name: "jsonwebtoken", load: (*jsRuntime).loadJSONWebToken}

var jwtAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512"}

// nodeAlgorithms are the algorithm names node-jsonwebtoken knows.
var nodeAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "none"}

var (
	hsAlgs  = []string{"HS256", "HS384", "HS512"}
	rsaAlgs = []string{"RS256", "RS384", "RS512"}
)

// msRe is the grammar of the `ms` package used for expiresIn / notBefore
// / maxAge strings.
var msRe = regexp.MustCompile(`(?i)^(-?(?:\d+)?\.?\d+) *(milliseconds?|msecs?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|years?|yrs?|y)?$`)

// parseMs converts an ms-style string to milliseconds.
func parseMs(s string) (float64, bool) {
	if len(s) > 100 {
		return 0, false
	}
	m := msRe.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	const (
		sec  = 1000.0
		min  = 60 * sec
		hour = 60 * min
		day  = 24 * hour
	)
	switch u := strings.ToLower(m[2]); {
	case strings.HasPrefix(u, "y"):
		return n * day * 365.25, true
	case strings.HasPrefix(u, "w"):
		return n * day * 7, true
	case strings.HasPrefix(u, "d"):
		return n * day, true
	case strings.HasPrefix(u, "h"):
		return n * hour, true
	case u == "m" || strings.HasPrefix(u, "min"):
		return n * min, true
	case u == "s" || strings.HasPrefix(u, "sec"):
		return n * sec, true
	default:
		return n, true
	}
}

// timespan implements jsonwebtoken's lib/timespan: a string is an ms
// duration, a number is seconds; the result is seconds since the epoch.
func timespan(v goja.Value, timestamp float64) (float64, bool) {
	switch x := v.Export().(type) {
	case string:
		ms, ok := parseMs(x)
		if !ok {
			return 0, false
		}
		return math.Floor(timestamp + ms/1000), true
	case int64:
		return timestamp + float64(x), true
	case float64:
		return timestamp + x, true
	}
	return 0, false
}

func isUndef(v goja.Value) bool { return v == nil || goja.IsUndefined(v) }

func isNullish(v goja.Value) bool { return v == nil || goja.IsUndefined(v) || goja.IsNull(v) }

func isInteger(v goja.Value) bool {
	switch x := v.Export().(type) {
	case int64:
		return true
	case float64:
		return x == math.Trunc(x) && !math.IsInf(x, 0)
	}
	return false
}

func isNumber(v goja.Value) bool {
	switch v.Export().(type) {
	case int64, float64:
		return true
	}
	return false
}

func isString(v goja.Value) bool { _, ok := v.Export().(string); return ok }

func isBool(v goja.Value) bool { _, ok := v.Export().(bool); return ok }

// keyKind classifies key material like Node's createPrivateKey /
// createPublicKey / createSecretKey chain.
type keyKind int

const (
	keySecret keyKind = iota
	keyPrivate
	keyPublic
)

type jwtKey struct {
	kind   keyKind
	secret []byte
	priv   *rsa.PrivateKey
	pub    *rsa.PublicKey
}

// keyBytes extracts key material from a string, Buffer, or {key} object.
func (rt *jsRuntime) keyBytes(v goja.Value) ([]byte, bool) {
	if s, ok := v.Export().(string); ok {
		return []byte(s), true
	}
	if isBufferLike(v) {
		return bytes.Clone(rt.bytesOf(v)), true
	}
	if o, ok := v.(*goja.Object); ok {
		if k := getp(o, "key"); !isNullish(k) {
			return rt.keyBytes(k)
		}
	}
	return nil, false
}

func isPEM(b []byte) bool { return bytes.Contains(b, []byte("-----BEGIN")) }

// signingKey mirrors sign(): a PEM private key is private, anything else
// secret.
func signingKey(b []byte) jwtKey {
	if isPEM(b) {
		if k, err := jwt.ParseRSAPrivateKeyFromPEM(b); err == nil {
			return jwtKey{kind: keyPrivate, priv: k}
		}
	}
	return jwtKey{kind: keySecret, secret: b}
}

// verifyingKey mirrors verify(): a PEM public key, certificate or private
// key is public, anything else secret.
func verifyingKey(b []byte) (jwtKey, bool) {
	if isPEM(b) {
		if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
			return jwtKey{kind: keyPublic, pub: k}, true
		}
		if k, err := jwt.ParseRSAPrivateKeyFromPEM(b); err == nil {
			return jwtKey{kind: keyPublic, pub: &k.PublicKey}, true
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) || bytes.Contains(b, []byte("PUBLIC KEY")) || bytes.Contains(b, []byte("CERTIFICATE")) {
			return jwtKey{}, false
		}
	}
	return jwtKey{kind: keySecret, secret: b}, true
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// loadJSONWebToken builds the jsonwebtoken module's exports.
func (rt *jsRuntime) loadJSONWebToken() *goja.Object {
	vm := rt.vm
	o := vm.NewObject()
	must(o.Set("sign", rt.jwtSign))
	must(o.Set("verify", rt.jwtVerify))
	must(o.Set("decode", func(call goja.FunctionCall) goja.Value {
		opts, _ := call.Argument(1).(*goja.Object)
		complete, forceJSON := false, false
		if opts != nil {
			complete = getp(opts, "complete").ToBoolean()
			forceJSON = getp(opts, "json").ToBoolean()
		}
		d, ok := rt.jwtDecode(call.Argument(0), forceJSON)
		if !ok {
			return goja.Null()
		}
		if complete {
			return d.object(vm)
		}
		return d.payload
	}))
	must(o.Set("JsonWebTokenError", rt.jwtError))
	must(o.Set("TokenExpiredError", rt.tokenExpired))
	must(o.Set("NotBeforeError", rt.notBefore))
	return o
}

func (rt *jsRuntime) jwtErr(msg string) *goja.Object {
	return rt.construct(rt.jwtError, rt.vm.ToValue(msg))
}

func (rt *jsRuntime) date(seconds float64) goja.Value {
	d, err := rt.vm.New(rt.ctors["Date"], rt.vm.ToValue(seconds*1000))
	if err != nil {
		panic(err)
	}
	return d
}

func (rt *jsRuntime) stringify(v goja.Value) string {
	s, err := rt.jsonStringify(goja.Undefined(), v)
	if err != nil {
		panic(err)
	}
	if isUndef(s) {
		return ""
	}
	return s.String()
}

// decodedJWT is the result of decoding (not verifying) a token.
type decodedJWT struct {
	header    *goja.Object
	payload   goja.Value
	signature string
	parts     []string
}

func (d decodedJWT) object(vm *goja.Runtime) *goja.Object {
	o := vm.NewObject()
	must(o.Set("header", d.header))
	must(o.Set("payload", d.payload))
	must(o.Set("signature", d.signature))
	return o
}

func isB64URL(s string, allowEmpty bool) bool {
	if s == "" {
		return allowEmpty
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// jwtDecode implements jws.decode + jsonwebtoken's decode. ok is false for
// anything that is not a JWS; an invalid JSON payload of a typ JWT token
// throws, as in the original.
func (rt *jsRuntime) jwtDecode(v goja.Value, forceJSON bool) (decodedJWT, bool) {
	s, ok := v.Export().(string)
	if !ok {
		return decodedJWT{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || !isB64URL(parts[0], false) || !isB64URL(parts[1], false) || !isB64URL(parts[2], true) {
		return decodedJWT{}, false
	}
	hv, err := rt.jsonParse(goja.Undefined(), rt.vm.ToValue(encodeBytes(decodeString(parts[0], encBase64URL), encUTF8)))
	if err != nil {
		return decodedJWT{}, false
	}
	header, ok := hv.(*goja.Object)
	if !ok {
		return decodedJWT{}, false
	}
	raw := rt.vm.ToValue(encodeBytes(decodeString(parts[1], encBase64URL), encUTF8))
	var payload goja.Value = raw
	if typ, _ := getp(header, "typ").Export().(string); typ == "JWT" || forceJSON {
		p, err := rt.jsonParse(goja.Undefined(), raw)
		if err != nil {
			panic(err)
		}
		payload = p
	}
	if _, isStr := payload.Export().(string); isStr {
		if p, err := rt.jsonParse(goja.Undefined(), payload); err == nil {
			if _, isObj := p.(*goja.Object); isObj {
				payload = p
			}
		}
	}
	return decodedJWT{header: header, payload: payload, signature: parts[2], parts: parts}, true
}

// listOf returns v's elements if it is an array, else [v].
func (rt *jsRuntime) listOf(v goja.Value) []goja.Value {
	if v == nil {
		v = goja.Undefined()
	}
	if !isArray(v) {
		return []goja.Value{v}
	}
	o := v.ToObject(rt.vm)
	n := toLength(o.Get("length"))
	out := make([]goja.Value, n)
	for i := range out {
		out[i] = getp(o, strconv.Itoa(i))
	}
	return out
}
