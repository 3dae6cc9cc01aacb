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
	rt.armSlice(deadline)
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
		if mf := res.Multifactor; mf != nil && st.actionMF != nil && sameValue(c.Get("multifactor"), st.actionMF) {
			mf.RequestedProvider, mf.Factors = st.actionMFRequested, st.actionMFFactors
		}
		if res.Redirect, rerr = readRedirect(c.Get("redirect"), st.redirectRule); rerr != nil {
			return
		}
		res.Metadata = st.meta
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

// mfDuoKeys are the keys of context.multifactor with a dedicated field
// when the provider is "duo".
var mfDuoKeys = [...]string{"ikey", "skey", "host", "username", "admin"}

// mfExported is an exported key of context.multifactor: ok is false when
// the key is absent or its value has no JSON form (as export reports).
type mfExported struct {
	v  any
	ok bool
}

// mfFields holds context.multifactor's keys as export would give them,
// without building a map for the keys with a dedicated field.
type mfFields struct {
	// provider is the exported provider unless it is a primitive string,
	// which is kept in providerStr (providerIsStr) to avoid boxing it.
	provider      mfExported
	providerStr   string
	providerIsStr bool
	allowRemember mfExported
	duo           [5]mfExported // in mfDuoKeys order
	other         map[string]any
}

// readMultifactorFields reads obj's own enumerable keys in order, each
// with one Get, exactly as export does for a plain object (same getter
// calls, cycle detection and node limit), keeping the values of the keys
// with a dedicated field apart. ok is false when export would not give a
// map (obj is a function, Date, Array or Buffer).
func (rt *jsRuntime) readMultifactorFields(obj *goja.Object) (f mfFields, ok bool) {
	if _, isFn := goja.AssertFunction(obj); isFn {
		return f, false
	}
	switch obj.ClassName() {
	case "Date", "Array":
		// Export it for the same side effects (getters, toISOString).
		rt.exportMap(obj)
		return f, false
	}
	if obj.ExportType() == typeBytes {
		return f, false
	}
	// The exportCtx (as export would have it after entering obj) is
	// only allocated once a value is an object.
	x := mfExporter{rt: rt, obj: obj, nodes: 1}
	for _, k := range obj.Keys() {
		if x.exceeded() {
			break
		}
		v := obj.Get(k)
		switch k {
		case "provider":
			if s, isStr := v.(goja.String); isStr {
				x.count()
				f.providerStr, f.providerIsStr = s.String(), true
				f.provider = mfExported{}
				continue
			}
			f.providerIsStr = false
			f.provider.v, f.provider.ok = x.export(v)
			continue
		case "allowRememberBrowser":
			f.allowRemember.v, f.allowRemember.ok = x.export(v)
			continue
		case "ignoreCookie":
			// Read separately (through the prototype chain); exported
			// only as export would.
			x.export(v)
			continue
		}
		e, ok := x.export(v)
		if i := slices.Index(mfDuoKeys[:], k); i >= 0 {
			f.duo[i] = mfExported{e, ok}
			continue
		}
		if ok {
			if f.other == nil {
				f.other = map[string]any{}
			}
			f.other[k] = e
		}
	}
	return f, true
}

// mfExporter exports the values of context.multifactor's keys as export
// does inside the object, allocating its exportCtx only for object values.
type mfExporter struct {
	rt    *jsRuntime
	obj   *goja.Object
	nodes int
	x     *exportCtx
}

func (m *mfExporter) count() {
	if m.x != nil {
		m.x.nodes++
	} else {
		m.nodes++
	}
}

func (m *mfExporter) exceeded() bool {
	if m.x != nil {
		return m.x.nodes > maxExportNodes
	}
	return m.nodes > maxExportNodes
}

func (m *mfExporter) export(v goja.Value) (any, bool) {
	if _, isObj := v.(*goja.Object); !isObj && m.x == nil {
		m.nodes++
		return exportPrimitive(v)
	}
	if m.x == nil {
		m.x = &exportCtx{path: []*goja.Object{m.obj}, nodes: m.nodes}
	}
	return m.rt.export(v, m.x)
}

// readMultifactor validates context.multifactor. Unknown providers and
// incomplete Duo settings fail closed. It behaves as if the whole object
// were exported (export's rules for values, getters and order), without
// exporting the keys with a dedicated field.
func (rt *jsRuntime) readMultifactor(v goja.Value, rule string) (*Multifactor, *Error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		return nil, internalErr(rule, "MultifactorError", "context.multifactor must be an object")
	}
	f, ok := rt.readMultifactorFields(obj)
	if !ok {
		return nil, internalErr(rule, "MultifactorError", "context.multifactor must be an object")
	}
	provider := "any"
	p, isStr := f.providerStr, f.providerIsStr
	if !isStr && f.provider.ok {
		switch pv := f.provider.v.(type) {
		case nil:
		case string:
			p, isStr = pv, true
		default:
			return nil, internalErr(rule, "MultifactorError", "context.multifactor.provider must be a string")
		}
	}
	if isStr {
		if t := strings.ToLower(strings.TrimSpace(p)); t != "" {
			provider = t
		}
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
	if b, ok := f.allowRemember.v.(bool); ok && f.allowRemember.ok && !b {
		mf.AllowRememberBrowser = false
	}
	mf.IgnoreCookie = getp(obj, "ignoreCookie").ToBoolean()

	if mf.Provider == "duo" {
		duo := &DuoOptions{}
		var missing []string
		for i, dst := range []*string{&duo.IKey, &duo.SKey, &duo.Host} {
			s, _ := f.duo[i].v.(string)
			if strings.TrimSpace(s) == "" {
				missing = append(missing, mfDuoKeys[i])
			}
			*dst = s
		}
		if len(missing) > 0 {
			return nil, internalErr(rule, "MultifactorError", "duo multifactor requires ikey, skey and host (missing or empty: %s)", strings.Join(missing, ", "))
		}
		if u := f.duo[3]; u.ok && u.v != nil {
			s, ok := u.v.(string)
			if !ok {
				return nil, internalErr(rule, "MultifactorError", "context.multifactor.username must be a string")
			}
			duo.Username = s
		}
		if a := f.duo[4]; a.ok && a.v != nil {
			am, ok := a.v.(map[string]any)
			if !ok {
				return nil, internalErr(rule, "MultifactorError", "context.multifactor.admin must be an object")
			}
			duo.Admin = am
		}
		mf.Duo = duo
	} else {
		for i, d := range f.duo {
			if d.ok {
				if f.other == nil {
					f.other = map[string]any{}
				}
				f.other[mfDuoKeys[i]] = d.v
			}
		}
	}
	mf.Options = f.other
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
