package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// readBackGrace is the minimum budget for reading results back after the
// pipeline (getters defined by rules may run).
const readBackGrace = 20 * time.Millisecond

// redacted replaces secrets in debug output.
const redacted = "[redacted]"

// guard runs f with the runtime's interrupt armed, turning JS exceptions,
// interrupts and panics into an error. discard reports whether the runtime
// may be inconsistent.
func (rt *jsRuntime) guard(deadline time.Time, f func()) (err error, discard bool) {
	if floor := time.Now().Add(readBackGrace); deadline.Before(floor) {
		deadline = floor
	}
	rt.arm(deadline)
	defer rt.disarm()
	defer func() {
		if p := recover(); p != nil {
			discard = true
			if e, ok := p.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("panic: %v", p)
			}
		}
	}()
	if ex := rt.vm.Try(f); ex != nil {
		return ex, false
	}
	return nil, false
}

// readBack reads context.multifactor, context.redirect and the custom
// claims after a successful pipeline.
func (rt *jsRuntime) readBack(deadline time.Time, debug bool) (Result, bool) {
	st := &rt.st
	var res Result
	var rerr *Error
	err, discard := rt.guard(deadline, func() {
		c := st.context
		if res.Multifactor, rerr = rt.readMultifactor(c.Get("multifactor"), st.multifactorRule); rerr != nil {
			return
		}
		if res.Redirect, rerr = readRedirect(c.Get("redirect"), st.redirectRule); rerr != nil {
			return
		}
		res.IDTokenClaims = rt.claimsOf(c, "idToken")
		res.AccessTokenClaims = rt.claimsOf(c, "accessToken")
		if debug {
			res.User = rt.exportMap(st.user)
			res.Context = redactContext(rt.exportMap(c))
		}
	})
	if err != nil {
		rule := st.multifactorRule
		if rule == "" && len(rt.e.rules) > 0 {
			rule = rt.e.rules[len(rt.e.rules)-1].name
		}
		e, d := rt.classify(err, rule)
		e.Message = "reading results: " + e.Message
		return Result{Rule: e.Rule, Err: e}, discard || d
	}
	if rerr != nil {
		out := Result{Rule: rerr.Rule, Err: rerr}
		if debug {
			out.User, out.Context = res.User, res.Context
		}
		return out, false
	}
	return res, false
}

// debugMaps fills User and Context of a failed run for RunDebug.
func (rt *jsRuntime) debugMaps(res *Result, deadline time.Time) {
	st := &rt.st
	if st.user == nil || st.context == nil {
		return
	}
	_, _ = rt.guard(deadline, func() {
		res.User = rt.exportMap(st.user)
		res.Context = redactContext(rt.exportMap(st.context))
	})
}

func redactContext(c map[string]any) map[string]any {
	if mf, ok := c["multifactor"].(map[string]any); ok {
		if _, ok := mf["skey"]; ok {
			mf["skey"] = redacted
		}
		if admin, ok := mf["admin"].(map[string]any); ok {
			if _, ok := admin["skey"]; ok {
				admin["skey"] = redacted
			}
		}
	}
	return c
}

// claimsOf reads the custom claims of c[key]. An empty object the engine
// created and no rule has read yet has none, and is left unbuilt.
func (rt *jsRuntime) claimsOf(c *goja.Object, key string) map[string]any {
	if in := rt.st.lazy; in != nil && c == in.ctxObj && in.ctx.pendingEmpty(key) {
		return nil
	}
	return rt.claims(c.Get(key))
}

func (rt *jsRuntime) claims(v goja.Value) map[string]any {
	m := rt.exportMap(v)
	if len(m) == 0 {
		return nil
	}
	return m
}

func internalErr(rule, name, format string, args ...any) *Error {
	return &Error{Kind: KindInternal, Name: name, Message: fmt.Sprintf(format, args...), Rule: rule}
}

// multifactor keys with a dedicated field.
var (
	mfCommonKeys = []string{"provider", "allowRememberBrowser", "ignoreCookie"}
	mfDuoKeys    = []string{"ikey", "skey", "host", "username", "admin"}
)

// readMultifactor validates context.multifactor. Unknown providers and
// incomplete Duo settings fail closed.
func (rt *jsRuntime) readMultifactor(v goja.Value, rule string) (*Multifactor, *Error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		return nil, internalErr(rule, "MultifactorError", "context.multifactor must be an object")
	}
	m := rt.exportMap(obj)
	if m == nil {
		return nil, internalErr(rule, "MultifactorError", "context.multifactor must be an object")
	}
	provider := "any"
	switch p := m["provider"].(type) {
	case nil:
	case string:
		if t := strings.ToLower(strings.TrimSpace(p)); t != "" {
			provider = t
		}
	default:
		return nil, internalErr(rule, "MultifactorError", "context.multifactor.provider must be a string")
	}
	mf := &Multifactor{Provider: provider, AllowRememberBrowser: true}
	switch provider {
	case "any", "google-authenticator", "duo", "none":
	case "guardian":
		// No Guardian push exists outside Auth0: the user picks among
		// the enrolled factors, as with "any".
		mf.Provider, mf.RequestedProvider = "any", provider
	default:
		return nil, internalErr(rule, "MultifactorError", "unknown/unsupported multifactor provider %q", provider)
	}
	if b, ok := m["allowRememberBrowser"].(bool); ok && !b {
		mf.AllowRememberBrowser = false
	}
	mf.IgnoreCookie = getp(obj, "ignoreCookie").ToBoolean()

	skip := mfCommonKeys
	if mf.Provider == "duo" {
		skip = append(slices.Clone(mfCommonKeys), mfDuoKeys...)
		duo := &DuoOptions{}
		var missing []string
		for _, f := range []struct {
			key string
			dst *string
		}{{"ikey", &duo.IKey}, {"skey", &duo.SKey}, {"host", &duo.Host}} {
			s, _ := m[f.key].(string)
			if strings.TrimSpace(s) == "" {
				missing = append(missing, f.key)
			}
			*f.dst = s
		}
		if len(missing) > 0 {
			return nil, internalErr(rule, "MultifactorError", "duo multifactor requires ikey, skey and host (missing or empty: %s)", strings.Join(missing, ", "))
		}
		if u, ok := m["username"]; ok && u != nil {
			s, ok := u.(string)
			if !ok {
				return nil, internalErr(rule, "MultifactorError", "context.multifactor.username must be a string")
			}
			duo.Username = s
		}
		if a, ok := m["admin"]; ok && a != nil {
			am, ok := a.(map[string]any)
			if !ok {
				return nil, internalErr(rule, "MultifactorError", "context.multifactor.admin must be an object")
			}
			duo.Admin = am
		}
		mf.Duo = duo
	}
	for k, val := range m {
		if slices.Contains(skip, k) {
			continue
		}
		if mf.Options == nil {
			mf.Options = map[string]any{}
		}
		mf.Options[k] = val
	}
	return mf, nil
}

func readRedirect(v goja.Value, rule string) (*Redirect, *Error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		return nil, internalErr(rule, "RedirectError", "context.redirect must be an object")
	}
	u := getp(obj, "url")
	s, ok := u.Export().(string)
	if !ok || strings.TrimSpace(s) == "" {
		return nil, internalErr(rule, "RedirectError", "context.redirect.url must be a non-empty string")
	}
	return &Redirect{URL: s}, nil
}
