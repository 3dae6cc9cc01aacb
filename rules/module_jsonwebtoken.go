package rules

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math"
	"regexp"
	"slices"
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

// jwtSign implements jwt.sign(payload, secretOrPrivateKey, [options, callback]).
func (rt *jsRuntime) jwtSign(call goja.FunctionCall) goja.Value {
	vm := rt.vm
	payload, keyV, optsV, cbV := call.Argument(0), call.Argument(1), call.Argument(2), call.Argument(3)
	if _, ok := goja.AssertFunction(optsV); ok {
		cbV, optsV = optsV, goja.Undefined()
	}
	cb, hasCb := goja.AssertFunction(cbV)
	fail := func(err *goja.Object) goja.Value {
		if hasCb {
			if _, e := cb(goja.Undefined(), err); e != nil {
				panic(e)
			}
			return goja.Undefined()
		}
		panic(err)
	}
	errorf := func(format string, args ...any) goja.Value {
		return fail(rt.newError("Error", fmt.Sprintf(format, args...)))
	}
	opts, _ := optsV.(*goja.Object)
	if opts == nil {
		opts = vm.NewObject()
	}
	get := func(k string) goja.Value { return getp(opts, k) }

	alg := "HS256"
	if a := get("algorithm"); !isUndef(a) && a.ToBoolean() {
		alg = a.String()
	}
	_, isPayloadObj := payload.(*goja.Object)
	isPayloadObj = (isPayloadObj || goja.IsNull(payload)) && !isBufferLike(payload)

	if !keyV.ToBoolean() && alg != "none" {
		return errorf("secretOrPrivateKey must have a value")
	}
	if !slices.Contains(nodeAlgorithms, alg) {
		return errorf("%q must be a valid string enum value", "algorithm")
	}
	if !slices.Contains(jwtAlgorithms, alg) {
		return errorf("algorithm %q is not supported", alg)
	}
	kb, ok := rt.keyBytes(keyV)
	if !ok {
		return errorf("secretOrPrivateKey is not valid key material")
	}
	key := signingKey(kb)
	if strings.HasPrefix(alg, "HS") && key.kind != keySecret {
		return errorf("secretOrPrivateKey must be a symmetric key when using %s", alg)
	}
	if strings.HasPrefix(alg, "RS") {
		if key.kind != keyPrivate {
			return errorf("secretOrPrivateKey must be an asymmetric key when using %s", alg)
		}
		if !get("allowInsecureKeySizes").ToBoolean() && key.priv.N.BitLen() < 2048 {
			return errorf("secretOrPrivateKey has a minimum key size of 2048 bits for %s", alg)
		}
	}

	var claims *goja.Object
	switch {
	case isUndef(payload):
		return errorf("payload is required")
	case isPayloadObj:
		src, ok := payload.(*goja.Object)
		if !ok || isArray(payload) {
			return errorf("Expected \"payload\" to be a plain object.")
		}
		for _, c := range []string{"iat", "exp", "nbf"} {
			if v := src.Get(c); !isUndef(v) && !isNumber(v) {
				return errorf("%q should be a number of seconds", c)
			}
		}
		claims = vm.NewObject()
		for _, k := range src.Keys() {
			// Own data properties: a "__proto__" key stays a claim.
			must(claims.DefineDataProperty(k, getp(src, k), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE))
		}
		if get("mutatePayload").ToBoolean() {
			claims = src
		}
	default:
		var bad []string
		for _, k := range []string{"expiresIn", "notBefore", "noTimestamp", "audience", "issuer", "subject", "jwtid"} {
			if !isUndef(get(k)) {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			typ := "string"
			if _, ok := payload.(*goja.Object); ok {
				typ = "object"
			}
			return errorf("invalid %s option for %s payload", strings.Join(bad, ","), typ)
		}
	}
	if claims != nil {
		if !isUndef(claims.Get("exp")) && !isUndef(get("expiresIn")) {
			return errorf("Bad \"options.expiresIn\" option the payload already has an \"exp\" property.")
		}
		if !isUndef(claims.Get("nbf")) && !isUndef(get("notBefore")) {
			return errorf("Bad \"options.notBefore\" option the payload already has an \"nbf\" property.")
		}
	}
	for _, k := range opts.Keys() {
		v := get(k)
		var valid bool
		var msg string
		switch k {
		case "expiresIn", "notBefore":
			valid = isInteger(v) || (isString(v) && v.String() != "")
			msg = fmt.Sprintf("%q should be a number of seconds or string representing a timespan", k)
		case "audience":
			valid, msg = isString(v) || isArray(v), "\"audience\" must be a string or array"
		case "algorithm":
			valid, msg = true, ""
		case "header":
			_, valid = v.(*goja.Object)
			msg = "\"header\" must be an object"
		case "encoding", "issuer", "subject", "jwtid", "keyid":
			valid, msg = isString(v), fmt.Sprintf("%q must be a string", k)
		case "noTimestamp", "mutatePayload", "allowInsecureKeySizes", "allowInvalidAsymmetricKeyTypes":
			valid, msg = isBool(v), fmt.Sprintf("%q must be a boolean", k)
		default:
			return errorf("%q is not allowed in \"options\"", k)
		}
		if !valid {
			return errorf("%s", msg)
		}
	}

	now := math.Floor(float64(rt.e.now().UnixMilli()) / 1000)
	timestamp := now
	if claims != nil {
		if iat := claims.Get("iat"); iat != nil && iat.ToBoolean() {
			timestamp = iat.ToFloat()
		}
		if get("noTimestamp").ToBoolean() {
			_ = claims.Delete("iat")
		} else {
			must(claims.Set("iat", timestamp))
		}
		if nb := get("notBefore"); !isUndef(nb) {
			v, ok := timespan(nb, timestamp)
			if !ok {
				return errorf("\"notBefore\" should be a number of seconds or string representing a timespan eg: \"1d\", \"20h\", 60")
			}
			must(claims.Set("nbf", v))
		}
		if ex := get("expiresIn"); !isUndef(ex) {
			v, ok := timespan(ex, timestamp)
			if !ok {
				return errorf("\"expiresIn\" should be a number of seconds or string representing a timespan eg: \"1d\", \"20h\", 60")
			}
			must(claims.Set("exp", v))
		}
		for _, m := range [][2]string{{"audience", "aud"}, {"issuer", "iss"}, {"subject", "sub"}, {"jwtid", "jti"}} {
			if v := get(m[0]); !isUndef(v) {
				if !isUndef(claims.Get(m[1])) {
					return errorf("Bad \"options.%s\" option. The payload already has an %q property.", m[0], m[1])
				}
				must(claims.Set(m[1], v))
			}
		}
	}

	header := vm.NewObject()
	must(header.Set("alg", alg))
	if claims != nil {
		must(header.Set("typ", "JWT"))
	}
	if kid := get("keyid"); !isUndef(kid) {
		must(header.Set("kid", kid))
	}
	if h, ok := get("header").(*goja.Object); ok {
		for _, k := range h.Keys() {
			must(header.DefineDataProperty(k, getp(h, k), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE))
		}
	}
	if ha, _ := getp(header, "alg").Export().(string); ha != alg {
		return errorf("header.alg %q does not match the algorithm %q", getp(header, "alg").String(), alg)
	}
	var body []byte
	switch {
	case claims != nil:
		body = []byte(rt.stringify(claims))
	case isBufferLike(payload):
		body = rt.bytesOf(payload)
	default:
		body = []byte(payload.String())
	}
	signingInput := b64url([]byte(rt.stringify(header))) + "." + b64url(body)
	method := jwt.GetSigningMethod(alg)
	var sig []byte
	var err error
	if key.kind == keySecret {
		sig, err = method.Sign(signingInput, key.secret)
	} else {
		sig, err = method.Sign(signingInput, key.priv)
	}
	if err != nil {
		return errorf("%s", err.Error())
	}
	token := vm.ToValue(signingInput + "." + b64url(sig))
	if hasCb {
		if _, e := cb(goja.Undefined(), goja.Null(), token); e != nil {
			panic(e)
		}
		return goja.Undefined()
	}
	return token
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

// jwtVerify implements jwt.verify(token, secretOrPublicKey, [options, callback]).
func (rt *jsRuntime) jwtVerify(call goja.FunctionCall) goja.Value {
	vm := rt.vm
	tokenV, keyV, optsV, cbV := call.Argument(0), call.Argument(1), call.Argument(2), call.Argument(3)
	if _, ok := goja.AssertFunction(optsV); ok && isUndef(cbV) {
		cbV, optsV = optsV, goja.Undefined()
	}
	cb, hasCb := goja.AssertFunction(cbV)
	done := func(err, res goja.Value) goja.Value {
		if hasCb {
			if err == nil {
				err = goja.Null()
			}
			if res == nil {
				res = goja.Undefined()
			}
			r, e := cb(goja.Undefined(), err, res)
			if e != nil {
				panic(e)
			}
			return r
		}
		if err != nil {
			panic(err)
		}
		return res
	}
	fail := func(msg string) goja.Value { return done(rt.jwtErr(msg), nil) }

	opts := vm.NewObject()
	if o, ok := optsV.(*goja.Object); ok {
		for _, k := range o.Keys() {
			must(opts.DefineDataProperty(k, getp(o, k), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE))
		}
	}
	get := func(k string) goja.Value { return getp(opts, k) }
	if ct := get("clockTimestamp"); ct.ToBoolean() && !isNumber(ct) {
		return fail("clockTimestamp must be a number")
	}
	if n := get("nonce"); !isUndef(n) && (!isString(n) || strings.TrimSpace(n.String()) == "") {
		return fail("nonce must be a non-empty string")
	}
	clock := math.Floor(float64(rt.e.now().UnixMilli()) / 1000)
	if ct := get("clockTimestamp"); ct.ToBoolean() {
		clock = ct.ToFloat()
	}
	if !tokenV.ToBoolean() {
		return fail("jwt must be provided")
	}
	token, ok := tokenV.Export().(string)
	if !ok {
		return fail("jwt must be a string")
	}
	if strings.Count(token, ".") != 2 {
		return fail("jwt malformed")
	}
	var d decodedJWT
	if ex := vm.Try(func() { d, ok = rt.jwtDecode(tokenV, false) }); ex != nil {
		return done(ex.Value(), nil)
	}
	if !ok {
		return fail("invalid token")
	}

	finish := func(secretV goja.Value) goja.Value {
		hasSig := strings.TrimSpace(d.parts[2]) != ""
		if !hasSig && secretV.ToBoolean() {
			return fail("jwt signature is required")
		}
		if hasSig && !secretV.ToBoolean() {
			return fail("secret or public key must be provided")
		}
		if !hasSig && isUndef(get("algorithms")) {
			return fail("please specify \"none\" in \"algorithms\" to verify unsigned tokens")
		}
		if !hasSig {
			// Deliberately stricter than jsonwebtoken: never accept "none".
			return fail("jwt signature is required")
		}
		kb, ok := rt.keyBytes(secretV)
		if !ok {
			return fail("secretOrPublicKey is not valid key material")
		}
		key, ok := verifyingKey(kb)
		if !ok {
			return fail("secretOrPublicKey is not valid key material")
		}
		var algs []string
		if a, ok := get("algorithms").(*goja.Object); ok {
			n := toLength(a.Get("length"))
			for i := 0; i < n; i++ {
				algs = append(algs, getp(a, strconv.Itoa(i)).String())
			}
		} else if key.kind == keySecret {
			algs = hsAlgs
		} else {
			algs = rsaAlgs
		}
		alg, _ := getp(d.header, "alg").Export().(string)
		if !slices.Contains(algs, alg) || !slices.Contains(jwtAlgorithms, alg) {
			return fail("invalid algorithm")
		}
		if strings.HasPrefix(alg, "HS") && key.kind != keySecret {
			return fail("secretOrPublicKey must be a symmetric key when using " + alg)
		}
		if strings.HasPrefix(alg, "RS") && key.kind != keyPublic {
			return fail("secretOrPublicKey must be an asymmetric key when using " + alg)
		}
		sig := decodeString(d.parts[2], encBase64URL)
		signingInput := d.parts[0] + "." + d.parts[1]
		var err error
		if key.kind == keySecret {
			err = jwt.GetSigningMethod(alg).Verify(signingInput, sig, key.secret)
		} else {
			err = jwt.GetSigningMethod(alg).Verify(signingInput, sig, key.pub)
		}
		if err != nil {
			return fail("invalid signature")
		}

		p, _ := d.payload.(*goja.Object)
		claim := func(k string) goja.Value {
			if p == nil {
				return goja.Undefined()
			}
			return getp(p, k)
		}
		tolerance := 0.0
		if t := get("clockTolerance"); t.ToBoolean() {
			tolerance = t.ToFloat()
		}
		if nbf := claim("nbf"); !isUndef(nbf) && !get("ignoreNotBefore").ToBoolean() {
			if !isNumber(nbf) {
				return fail("invalid nbf value")
			}
			if nbf.ToFloat() > clock+tolerance {
				return done(rt.construct(rt.notBefore, vm.ToValue("jwt not active"), rt.date(nbf.ToFloat())), nil)
			}
		}
		if exp := claim("exp"); !isUndef(exp) && !get("ignoreExpiration").ToBoolean() {
			if !isNumber(exp) {
				return fail("invalid exp value")
			}
			if clock >= exp.ToFloat()+tolerance {
				return done(rt.construct(rt.tokenExpired, vm.ToValue("jwt expired"), rt.date(exp.ToFloat())), nil)
			}
		}
		if aud := get("audience"); aud.ToBoolean() {
			audiences := rt.listOf(aud)
			targets := rt.listOf(claim("aud"))
			matched := false
			for _, t := range targets {
				for _, a := range audiences {
					if ao, ok := a.(*goja.Object); ok && ao.ClassName() == "RegExp" {
						if test, ok := goja.AssertFunction(ao.Get("test")); ok {
							r, err := test(ao, t)
							if err != nil {
								panic(err)
							}
							matched = matched || r.ToBoolean()
						}
					} else if a.StrictEquals(t) {
						matched = true
					}
				}
			}
			if !matched {
				names := make([]string, len(audiences))
				for i, a := range audiences {
					names[i] = a.String()
				}
				return fail("jwt audience invalid. expected: " + strings.Join(names, " or "))
			}
		}
		if iss := get("issuer"); iss.ToBoolean() {
			invalid := false
			if isString(iss) {
				invalid = !iss.StrictEquals(claim("iss"))
			} else if isArray(iss) {
				invalid = true
				for _, x := range rt.listOf(iss) {
					if x.StrictEquals(claim("iss")) {
						invalid = false
					}
				}
			}
			if invalid {
				return fail("jwt issuer invalid. expected: " + iss.String())
			}
		}
		for _, c := range [][3]string{{"subject", "sub", "jwt subject invalid. expected: "}, {"jwtid", "jti", "jwt jwtid invalid. expected: "}, {"nonce", "nonce", "jwt nonce invalid. expected: "}} {
			if want := get(c[0]); want.ToBoolean() && !want.StrictEquals(claim(c[1])) {
				return fail(c[2] + want.String())
			}
		}
		if maxAge := get("maxAge"); maxAge.ToBoolean() {
			iat := claim("iat")
			if !isNumber(iat) {
				return fail("iat required when maxAge is specified")
			}
			ts, ok := timespan(maxAge, iat.ToFloat())
			if !ok {
				return fail("\"maxAge\" should be a number of seconds or string representing a timespan eg: \"1d\", \"20h\", 60")
			}
			if clock >= ts+tolerance {
				return done(rt.construct(rt.tokenExpired, vm.ToValue("maxAge exceeded"), rt.date(ts)), nil)
			}
		}
		if get("complete").ToBoolean() {
			return done(nil, d.object(vm))
		}
		return done(nil, d.payload)
	}

	if getter, ok := goja.AssertFunction(keyV); ok {
		if !hasCb {
			return fail("verify must be called asynchronous if secret or public key is provided as a callback")
		}
		cont := vm.ToValue(func(c goja.FunctionCall) goja.Value {
			if e := c.Argument(0); !isNullish(e) {
				msg := ""
				if eo, ok := e.(*goja.Object); ok {
					msg = getp(eo, "message").String()
				} else {
					msg = e.String()
				}
				return fail("error in secret or public key callback: " + msg)
			}
			return finish(c.Argument(1))
		})
		r, err := getter(goja.Undefined(), d.header, cont)
		if err != nil {
			panic(err)
		}
		return r
	}
	return finish(keyV)
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
