package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/dop251/goja"
	"github.com/golang-jwt/jwt/v5"
)

// jwtSign implements jwt.sign(payload, secretOrPrivateKey, [options,
// callback]). A failure is an Error: thrown, or passed to the callback,
// which is called synchronously either way.
func (rt *jsRuntime) jwtSign(call goja.FunctionCall) goja.Value {
	payload, keyV, optsV, cbV := call.Argument(0), call.Argument(1), call.Argument(2), call.Argument(3)
	if _, ok := goja.AssertFunction(optsV); ok {
		cbV, optsV = optsV, goja.Undefined()
	}
	cb, hasCb := goja.AssertFunction(cbV)
	opts, _ := optsV.(*goja.Object)
	if opts == nil {
		opts = rt.vm.NewObject()
	}
	s := jwtSigner{rt: rt, opts: opts, payload: payload}
	token, err := s.sign(keyV)
	if err != nil {
		jsErr := rt.newError("Error", err.Error())
		if !hasCb {
			panic(jsErr)
		}
		if _, e := cb(goja.Undefined(), jsErr); e != nil {
			panic(e)
		}
		return goja.Undefined()
	}
	tv := rt.vm.ToValue(token)
	if !hasCb {
		return tv
	}
	if _, e := cb(goja.Undefined(), goja.Null(), tv); e != nil {
		panic(e)
	}
	return goja.Undefined()
}

// jwtSigner is one jwt.sign call. Its steps run in node-jsonwebtoken's
// order, so that a call with several problems reports the same one.
type jwtSigner struct {
	rt      *jsRuntime
	opts    *goja.Object
	payload goja.Value
	alg     string
	key     jwtKey
	// claims is the object payload to sign (a copy, unless
	// mutatePayload), nil for a string or Buffer payload.
	claims *goja.Object
}

func (s *jwtSigner) get(k string) goja.Value { return getp(s.opts, k) }

// sign returns the token, or the message of the Error to report.
func (s *jwtSigner) sign(keyV goja.Value) (string, error) {
	if err := s.chooseKey(keyV); err != nil {
		return "", err
	}
	if err := s.readPayload(); err != nil {
		return "", err
	}
	if err := s.checkOptions(); err != nil {
		return "", err
	}
	if err := s.registeredClaims(); err != nil {
		return "", err
	}
	header, err := s.header()
	if err != nil {
		return "", err
	}
	return s.token(header)
}

// chooseKey reads the algorithm (default HS256) and the key material,
// which must suit it: a secret for HS*, an RSA private key of at least
// 2048 bits (unless allowInsecureKeySizes) for RS*.
func (s *jwtSigner) chooseKey(keyV goja.Value) error {
	s.alg = "HS256"
	if a := s.get("algorithm"); !isUndef(a) && a.ToBoolean() {
		s.alg = a.String()
	}
	alg := s.alg
	if !keyV.ToBoolean() && alg != "none" {
		return errors.New("secretOrPrivateKey must have a value")
	}
	if !slices.Contains(nodeAlgorithms, alg) {
		return fmt.Errorf("%q must be a valid string enum value", "algorithm")
	}
	if !slices.Contains(jwtAlgorithms, alg) {
		return fmt.Errorf("algorithm %q is not supported", alg)
	}
	kb, ok := s.rt.keyBytes(keyV)
	if !ok {
		return errors.New("secretOrPrivateKey is not valid key material")
	}
	s.key = signingKey(kb)
	if strings.HasPrefix(alg, "HS") && s.key.kind != keySecret {
		return fmt.Errorf("secretOrPrivateKey must be a symmetric key when using %s", alg)
	}
	if strings.HasPrefix(alg, "RS") {
		if s.key.kind != keyPrivate {
			return fmt.Errorf("secretOrPrivateKey must be an asymmetric key when using %s", alg)
		}
		if !s.get("allowInsecureKeySizes").ToBoolean() && s.key.priv.N.BitLen() < 2048 {
			return fmt.Errorf("secretOrPrivateKey has a minimum key size of 2048 bits for %s", alg)
		}
	}
	return nil
}

// readPayload checks the payload: a plain object (whose iat, exp and nbf
// are numbers, and which the options do not contradict) becomes claims;
// any other payload refuses the options that set claims.
func (s *jwtSigner) readPayload() error {
	payload := s.payload
	_, isObj := payload.(*goja.Object)
	isObj = (isObj || goja.IsNull(payload)) && !isBufferLike(payload)
	switch {
	case isUndef(payload):
		return errors.New("payload is required")
	case isObj:
		src, ok := payload.(*goja.Object)
		if !ok || isArray(payload) {
			return errors.New("Expected \"payload\" to be a plain object.")
		}
		for _, c := range []string{"iat", "exp", "nbf"} {
			if v := src.Get(c); !isUndef(v) && !isNumber(v) {
				return fmt.Errorf("%q should be a number of seconds", c)
			}
		}
		s.claims = s.rt.vm.NewObject()
		for _, k := range src.Keys() {
			// Own data properties: a "__proto__" key stays a claim.
			must(s.claims.DefineDataProperty(k, getp(src, k), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE))
		}
		if s.get("mutatePayload").ToBoolean() {
			s.claims = src
		}
	default:
		var bad []string
		for _, k := range []string{"expiresIn", "notBefore", "noTimestamp", "audience", "issuer", "subject", "jwtid"} {
			if !isUndef(s.get(k)) {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			typ := "string"
			if _, ok := payload.(*goja.Object); ok {
				typ = "object"
			}
			return fmt.Errorf("invalid %s option for %s payload", strings.Join(bad, ","), typ)
		}
	}
	if s.claims != nil {
		if !isUndef(s.claims.Get("exp")) && !isUndef(s.get("expiresIn")) {
			return errors.New("Bad \"options.expiresIn\" option the payload already has an \"exp\" property.")
		}
		if !isUndef(s.claims.Get("nbf")) && !isUndef(s.get("notBefore")) {
			return errors.New("Bad \"options.notBefore\" option the payload already has an \"nbf\" property.")
		}
	}
	return nil
}

// checkOptions refuses unknown options and options of the wrong type.
func (s *jwtSigner) checkOptions() error {
	for _, k := range s.opts.Keys() {
		v := s.get(k)
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
			return fmt.Errorf("%q is not allowed in \"options\"", k)
		}
		if !valid {
			return errors.New(msg)
		}
	}
	return nil
}

// registeredClaims sets iat (unless noTimestamp), nbf and exp (relative
// to iat) and the claims the options name (aud, iss, sub, jti), which the
// payload must not already hold.
func (s *jwtSigner) registeredClaims() error {
	claims := s.claims
	if claims == nil {
		return nil
	}
	timestamp := math.Floor(float64(s.rt.e.now().UnixMilli()) / 1000)
	if iat := claims.Get("iat"); iat != nil && iat.ToBoolean() {
		timestamp = iat.ToFloat()
	}
	if s.get("noTimestamp").ToBoolean() {
		_ = claims.Delete("iat")
	} else {
		must(claims.Set("iat", timestamp))
	}
	for _, t := range [...][2]string{{"notBefore", "nbf"}, {"expiresIn", "exp"}} {
		if ts := s.get(t[0]); !isUndef(ts) {
			v, ok := timespan(ts, timestamp)
			if !ok {
				return fmt.Errorf("%q should be a number of seconds or string representing a timespan eg: \"1d\", \"20h\", 60", t[0])
			}
			must(claims.Set(t[1], v))
		}
	}
	for _, m := range [...][2]string{{"audience", "aud"}, {"issuer", "iss"}, {"subject", "sub"}, {"jwtid", "jti"}} {
		if v := s.get(m[0]); !isUndef(v) {
			if !isUndef(claims.Get(m[1])) {
				return fmt.Errorf("Bad \"options.%s\" option. The payload already has an %q property.", m[0], m[1])
			}
			must(claims.Set(m[1], v))
		}
	}
	return nil
}

// header builds the JOSE header: alg, typ for a claims payload, kid from
// keyid, then options.header, which must keep alg.
func (s *jwtSigner) header() (*goja.Object, error) {
	header := s.rt.vm.NewObject()
	must(header.Set("alg", s.alg))
	if s.claims != nil {
		must(header.Set("typ", "JWT"))
	}
	if kid := s.get("keyid"); !isUndef(kid) {
		must(header.Set("kid", kid))
	}
	if h, ok := s.get("header").(*goja.Object); ok {
		for _, k := range h.Keys() {
			must(header.DefineDataProperty(k, getp(h, k), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE))
		}
	}
	if ha, _ := getp(header, "alg").Export().(string); ha != s.alg {
		return nil, fmt.Errorf("header.alg %q does not match the algorithm %q", getp(header, "alg").String(), s.alg)
	}
	return header, nil
}

// token encodes and signs header and payload.
func (s *jwtSigner) token(header *goja.Object) (string, error) {
	rt := s.rt
	var body []byte
	switch {
	case s.claims != nil:
		body = []byte(rt.stringify(s.claims))
	case isBufferLike(s.payload):
		body = rt.bytesOf(s.payload)
	default:
		body = []byte(s.payload.String())
	}
	signingInput := b64url([]byte(rt.stringify(header))) + "." + b64url(body)
	method := jwt.GetSigningMethod(s.alg)
	var sig []byte
	var err error
	if s.key.kind == keySecret {
		sig, err = method.Sign(signingInput, s.key.secret)
	} else {
		sig, err = method.Sign(signingInput, s.key.priv)
	}
	if err != nil {
		return "", err
	}
	return signingInput + "." + b64url(sig), nil
}
