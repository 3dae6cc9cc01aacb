package rules

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dop251/goja"
	"github.com/golang-jwt/jwt/v5"
)

// jwtVerify implements jwt.verify(token, secretOrPublicKey, [options,
// callback]). A failure is a JsonWebTokenError, TokenExpiredError or
// NotBeforeError: thrown, or passed to the callback. The key may be a
// function(header, callback) that supplies it, with a callback only.
func (rt *jsRuntime) jwtVerify(call goja.FunctionCall) goja.Value {
	tokenV, keyV, optsV, cbV := call.Argument(0), call.Argument(1), call.Argument(2), call.Argument(3)
	if _, ok := goja.AssertFunction(optsV); ok && isUndef(cbV) {
		cbV, optsV = optsV, goja.Undefined()
	}
	v := &jwtVerifier{rt: rt, opts: rt.vm.NewObject()}
	v.cb, v.hasCb = goja.AssertFunction(cbV)
	if o, ok := optsV.(*goja.Object); ok {
		// A copy: the checks read each option once, as data.
		for _, k := range o.Keys() {
			must(v.opts.DefineDataProperty(k, getp(o, k), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE))
		}
	}
	if err := v.decode(tokenV); err != nil {
		return v.done(err, nil)
	}
	if getter, ok := goja.AssertFunction(keyV); ok {
		return v.keyFromCallback(getter)
	}
	return v.finish(keyV)
}

// jwtVerifier is one jwt.verify call. Its checks run in
// node-jsonwebtoken's order, so that a token with several problems
// reports the same one. Each returns the error to report, or nil.
type jwtVerifier struct {
	rt    *jsRuntime
	opts  *goja.Object
	cb    goja.Callable
	hasCb bool
	// clock is the time the claims are checked against, in seconds.
	clock float64
	d     decodedJWT
	// secret is the key material verify was given.
	secret goja.Value
}

func (v *jwtVerifier) get(k string) goja.Value { return getp(v.opts, k) }

func (v *jwtVerifier) fail(msg string) goja.Value { return v.rt.jwtErr(msg) }

// done reports the outcome: to the callback, whose result it returns, or
// by returning res or throwing err.
func (v *jwtVerifier) done(err, res goja.Value) goja.Value {
	if !v.hasCb {
		if err != nil {
			panic(err)
		}
		return res
	}
	if err == nil {
		err = goja.Null()
	}
	if res == nil {
		res = goja.Undefined()
	}
	r, e := v.cb(goja.Undefined(), err, res)
	if e != nil {
		panic(e)
	}
	return r
}

// decode checks the options that need no token, sets the clock and
// decodes the token.
func (v *jwtVerifier) decode(tokenV goja.Value) goja.Value {
	if ct := v.get("clockTimestamp"); ct.ToBoolean() && !isNumber(ct) {
		return v.fail("clockTimestamp must be a number")
	}
	if n := v.get("nonce"); !isUndef(n) && (!isString(n) || strings.TrimSpace(n.String()) == "") {
		return v.fail("nonce must be a non-empty string")
	}
	v.clock = math.Floor(float64(v.rt.e.now().UnixMilli()) / 1000)
	if ct := v.get("clockTimestamp"); ct.ToBoolean() {
		v.clock = ct.ToFloat()
	}
	if !tokenV.ToBoolean() {
		return v.fail("jwt must be provided")
	}
	token, ok := tokenV.Export().(string)
	if !ok {
		return v.fail("jwt must be a string")
	}
	if strings.Count(token, ".") != 2 {
		return v.fail("jwt malformed")
	}
	if ex := v.rt.vm.Try(func() { v.d, ok = v.rt.jwtDecode(tokenV, false) }); ex != nil {
		return ex.Value()
	}
	if !ok {
		return v.fail("invalid token")
	}
	return nil
}

// keyFromCallback asks getter(header, callback) for the key and
// finishes in its callback.
func (v *jwtVerifier) keyFromCallback(getter goja.Callable) goja.Value {
	if !v.hasCb {
		return v.done(v.fail("verify must be called asynchronous if secret or public key is provided as a callback"), nil)
	}
	cont := v.rt.vm.ToValue(func(c goja.FunctionCall) goja.Value {
		if e := c.Argument(0); !isNullish(e) {
			msg := ""
			if eo, ok := e.(*goja.Object); ok {
				msg = getp(eo, "message").String()
			} else {
				msg = e.String()
			}
			return v.done(v.fail("error in secret or public key callback: "+msg), nil)
		}
		return v.finish(c.Argument(1))
	})
	r, err := getter(goja.Undefined(), v.d.header, cont)
	if err != nil {
		panic(err)
	}
	return r
}

// finish verifies the decoded token with secretV and reports the
// payload, or {header, payload, signature} with options.complete.
func (v *jwtVerifier) finish(secretV goja.Value) goja.Value {
	if err := v.verify(secretV); err != nil {
		return v.done(err, nil)
	}
	if v.get("complete").ToBoolean() {
		return v.done(nil, v.d.object(v.rt.vm))
	}
	return v.done(nil, v.d.payload)
}

// verify runs the checks in order and returns the first error.
func (v *jwtVerifier) verify(secretV goja.Value) goja.Value {
	v.secret = secretV
	for _, check := range [...]func() goja.Value{
		v.signature,
		v.notBefore,
		v.expiry,
		v.audience,
		v.issuer,
		v.identifiers,
		v.maxAge,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// signature checks the signature with the key, for an algorithm both
// options.algorithms (by default those of the key's kind) and stepup
// allow. An unsigned token never verifies.
func (v *jwtVerifier) signature() goja.Value {
	secretV := v.secret
	hasSig := strings.TrimSpace(v.d.parts[2]) != ""
	if !hasSig && secretV.ToBoolean() {
		return v.fail("jwt signature is required")
	}
	if hasSig && !secretV.ToBoolean() {
		return v.fail("secret or public key must be provided")
	}
	if !hasSig && isUndef(v.get("algorithms")) {
		return v.fail("please specify \"none\" in \"algorithms\" to verify unsigned tokens")
	}
	if !hasSig {
		// Deliberately stricter than jsonwebtoken: never accept "none".
		return v.fail("jwt signature is required")
	}
	kb, ok := v.rt.keyBytes(secretV)
	if !ok {
		return v.fail("secretOrPublicKey is not valid key material")
	}
	key, ok := verifyingKey(kb)
	if !ok {
		return v.fail("secretOrPublicKey is not valid key material")
	}
	var algs []string
	if a, ok := v.get("algorithms").(*goja.Object); ok {
		n := toLength(a.Get("length"))
		for i := 0; i < n; i++ {
			algs = append(algs, getp(a, strconv.Itoa(i)).String())
		}
	} else if key.kind == keySecret {
		algs = hsAlgs
	} else {
		algs = rsaAlgs
	}
	alg, _ := getp(v.d.header, "alg").Export().(string)
	if !slices.Contains(algs, alg) || !slices.Contains(jwtAlgorithms, alg) {
		return v.fail("invalid algorithm")
	}
	if strings.HasPrefix(alg, "HS") && key.kind != keySecret {
		return v.fail("secretOrPublicKey must be a symmetric key when using " + alg)
	}
	if strings.HasPrefix(alg, "RS") && key.kind != keyPublic {
		return v.fail("secretOrPublicKey must be an asymmetric key when using " + alg)
	}
	sig := decodeString(v.d.parts[2], encBase64URL)
	signingInput := v.d.parts[0] + "." + v.d.parts[1]
	var err error
	if key.kind == keySecret {
		err = jwt.GetSigningMethod(alg).Verify(signingInput, sig, key.secret)
	} else {
		err = jwt.GetSigningMethod(alg).Verify(signingInput, sig, key.pub)
	}
	if err != nil {
		return v.fail("invalid signature")
	}
	return nil
}

// claim is the payload's claim k, undefined for a payload that is not an
// object.
func (v *jwtVerifier) claim(k string) goja.Value {
	p, _ := v.d.payload.(*goja.Object)
	if p == nil {
		return goja.Undefined()
	}
	return getp(p, k)
}

// tolerance is options.clockTolerance in seconds.
func (v *jwtVerifier) tolerance() float64 {
	if t := v.get("clockTolerance"); t.ToBoolean() {
		return t.ToFloat()
	}
	return 0
}

func (v *jwtVerifier) notBefore() goja.Value {
	nbf := v.claim("nbf")
	if isUndef(nbf) || v.get("ignoreNotBefore").ToBoolean() {
		return nil
	}
	if !isNumber(nbf) {
		return v.fail("invalid nbf value")
	}
	if nbf.ToFloat() > v.clock+v.tolerance() {
		return v.rt.construct(v.rt.notBefore, v.rt.vm.ToValue("jwt not active"), v.rt.date(nbf.ToFloat()))
	}
	return nil
}

func (v *jwtVerifier) expiry() goja.Value {
	exp := v.claim("exp")
	if isUndef(exp) || v.get("ignoreExpiration").ToBoolean() {
		return nil
	}
	if !isNumber(exp) {
		return v.fail("invalid exp value")
	}
	if v.clock >= exp.ToFloat()+v.tolerance() {
		return v.rt.construct(v.rt.tokenExpired, v.rt.vm.ToValue("jwt expired"), v.rt.date(exp.ToFloat()))
	}
	return nil
}

// audience checks that some aud claim equals, or matches the RegExp of,
// some options.audience.
func (v *jwtVerifier) audience() goja.Value {
	aud := v.get("audience")
	if !aud.ToBoolean() {
		return nil
	}
	audiences := v.rt.listOf(aud)
	matched := false
	for _, t := range v.rt.listOf(v.claim("aud")) {
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
	if matched {
		return nil
	}
	names := make([]string, len(audiences))
	for i, a := range audiences {
		names[i] = a.String()
	}
	return v.fail("jwt audience invalid. expected: " + strings.Join(names, " or "))
}

// issuer checks iss against options.issuer, a string or an array.
func (v *jwtVerifier) issuer() goja.Value {
	iss := v.get("issuer")
	if !iss.ToBoolean() {
		return nil
	}
	invalid := false
	if isString(iss) {
		invalid = !iss.StrictEquals(v.claim("iss"))
	} else if isArray(iss) {
		invalid = true
		for _, x := range v.rt.listOf(iss) {
			if x.StrictEquals(v.claim("iss")) {
				invalid = false
			}
		}
	}
	if invalid {
		return v.fail("jwt issuer invalid. expected: " + iss.String())
	}
	return nil
}

// identifiers checks sub, jti and nonce against the options naming them.
func (v *jwtVerifier) identifiers() goja.Value {
	for _, c := range [...][3]string{{"subject", "sub", "jwt subject invalid. expected: "}, {"jwtid", "jti", "jwt jwtid invalid. expected: "}, {"nonce", "nonce", "jwt nonce invalid. expected: "}} {
		if want := v.get(c[0]); want.ToBoolean() && !want.StrictEquals(v.claim(c[1])) {
			return v.fail(c[2] + want.String())
		}
	}
	return nil
}

// maxAge checks that iat is no older than options.maxAge.
func (v *jwtVerifier) maxAge() goja.Value {
	maxAge := v.get("maxAge")
	if !maxAge.ToBoolean() {
		return nil
	}
	iat := v.claim("iat")
	if !isNumber(iat) {
		return v.fail("iat required when maxAge is specified")
	}
	ts, ok := timespan(maxAge, iat.ToFloat())
	if !ok {
		return v.fail("\"maxAge\" should be a number of seconds or string representing a timespan eg: \"1d\", \"20h\", 60")
	}
	if v.clock >= ts+v.tolerance() {
		return v.rt.construct(v.rt.tokenExpired, v.rt.vm.ToValue("maxAge exceeded"), v.rt.date(ts))
	}
	return nil
}
