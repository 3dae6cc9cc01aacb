package rules

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// Lazy input objects.
//
// Most rules read two or three fields of `user` and `context`, yet building
// both as native JavaScript objects costs about a hundred allocations per
// run. Instead, the engine hands rules goja dynamic objects backed by a
// lazyObject: a Go-side ordered property list whose values are converted to
// JavaScript on first read. Whatever a rule does with them — read, assign,
// add, delete, `in`, Object.keys, for-in, JSON.stringify, Object.assign,
// spread, keep them in `global` — behaves as on a native object with the
// same properties in the same order:
//
//   - a materialized value is cached, so identity holds
//     (context.request === context.request) and mutations of nested
//     objects stay visible to later rules and to the read-back;
//   - the data a pending property is built from belongs to the run that
//     created the object (a copy of Input.Context, the caller's maps, never
//     runtime state), so an object a rule kept in `global` shows the same
//     values in any later run, and never another request's;
//   - keys enumerate in ordinary-object order: array indices ascending,
//     then the other keys in insertion order.
//
// goja's dynamic objects cannot be frozen, sealed or made non-extensible,
// cannot hold accessors, non-writable, non-enumerable or non-configurable
// properties, symbol-keyed properties or class private fields, and
// Object.defineProperty on a new key would make it enumerable and writable
// instead of neither. New therefore only enables lazy objects when no rule
// mentions anything that could do that (see nativeObjectTokens); otherwise
// the engine builds native objects, exactly as before.

// nativeObjectTokens are the names whose presence in a rule's text makes
// the engine build native user and context objects: every operation a
// dynamic object does not support goes through one of them. They are
// matched as whole words anywhere in the text, comments and strings
// included, so that Object["freeze"] counts too. A rule that assembles such
// a name at run time (concatenation, character codes) escapes the check
// and meets the differences listed above: mostly a TypeError (the rule
// fails, closed), but a property defined with Object.defineProperty would
// be enumerable and writable, and a symbol-keyed property assigned in
// sloppy mode would be dropped.
var nativeObjectTokens = []string{
	"defineProperty", "defineProperties", "__defineGetter__", "__defineSetter__",
	"freeze", "seal", "preventExtensions",
	"Reflect", "Proxy", "Symbol", "getOwnPropertySymbols", "getOwnPropertyDescriptors",
	"eval", "Function", "extends",
}

// needsNativeObjects reports whether a rule's text mentions one of
// nativeObjectTokens, or uses escapes (\u, \x, octal) that could spell one
// in an identifier or a string without the plain word appearing.
func needsNativeObjects(code []byte) bool { return nativeObjectsReason(code) != "" }

// nativeObjectsReason says why a rule needs native objects: the token it
// mentions, quoted, or "an escape sequence"; "" when it does not.
func nativeObjectsReason(code []byte) string {
	s := string(code)
	for i := 0; i+1 < len(s); i++ {
		if c := s[i+1]; s[i] == '\\' && (c == 'u' || c == 'x' || c >= '0' && c <= '7') {
			return "an escape sequence (\\" + string(c) + ")"
		}
	}
	for _, tok := range nativeObjectTokens {
		for off := 0; ; {
			j := strings.Index(s[off:], tok)
			if j < 0 {
				break
			}
			j += off
			end := j + len(tok)
			if (j == 0 || !isIdentByte(s[j-1])) && (end == len(s) || !isIdentByte(s[end])) {
				return `"` + tok + `"`
			}
			off = j + 1
		}
	}
	return ""
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// lazyKind says how a pending property is built.
type lazyKind uint8

const (
	// lazyValue converts src, a JSON-like Go value (nested maps become
	// lazy objects).
	lazyValue lazyKind = iota
	// lazyStrMap converts the lazyObject's string map entry of the name.
	lazyStrMap
	// lazyEmpty is a new empty native object.
	lazyEmpty
	// context fields, read from the lazyObject's Context.
	lazyClientID
	lazyClientName
	lazyConnection
	lazyConnectionStrategy
	lazyProtocol
	lazySessionID
	lazyTenant
	lazyClientMetadata
	lazyRequest
	lazyAuthentication
	lazyStats
	lazySSO
	// context.request fields.
	lazyIP
	lazyHostname
	lazyUserAgent
	lazyQuery
	lazyBody
	lazyNetworks
	lazyGeoip
	// lazyIPParts is the octets / parts array of an ipaddr.js address.
	lazyIPParts
)

// lazyProp is one own property of a lazyObject.
type lazyProp struct {
	name string
	// v is the property's JavaScript value (a goja.Value) once done;
	// while pending, the Go source of a lazyValue property. One field for
	// both keeps the per-run lazyInput small (it holds dozens of these).
	v    any
	kind lazyKind
	// done is set once v holds the JavaScript value.
	done bool
	// dead marks a deleted property left in place (only while idx is in
	// use: deleting from a large object must not shift and re-index it).
	dead bool
}

// value returns the JavaScript value of a done property.
func (p *lazyProp) value() goja.Value {
	v, _ := p.v.(goja.Value)
	return v
}

// lazyObject implements goja.DynamicObject.
type lazyObject struct {
	rt    *jsRuntime
	props []lazyProp
	// nIdx counts the keys that are array indices (they enumerate first).
	nIdx int
	// in holds the Context of context-derived kinds.
	in *lazyInput
	// strs backs lazyStrMap properties.
	strs map[string]string
	// ip backs the lazyIPParts property of an address object.
	ip *ipVal
	// idx maps names to positions in props once there are more than
	// lazyIndexMin (a rule adding thousands of properties must not make
	// every access a long scan); dead counts the deleted entries left in
	// props meanwhile.
	idx  map[string]int
	dead int
}

const lazyIndexMin = 32

// lazyInput is the per-run allocation behind the lazy user, context and
// context.request.
type lazyInput struct {
	c              Context
	user, ctx, req lazyObject
	// ctxObj is the context object handed to the first rule.
	ctxObj *goja.Object
	// ctxProps has room for the properties rules usually add
	// (multifactor, redirect); more move the slice to the heap. The sizes
	// keep the whole struct within the 2 KiB allocation class.
	ctxProps  [len(contextKinds) + 2]lazyProp
	reqProps  [7]lazyProp
	userProps [15]lazyProp
}

// contextKinds are context's own properties in creation order.
var contextKinds = [...]struct {
	name string
	kind lazyKind
}{
	{"clientID", lazyClientID},
	{"clientName", lazyClientName},
	{"connection", lazyConnection},
	{"connectionStrategy", lazyConnectionStrategy},
	{"protocol", lazyProtocol},
	{"sessionID", lazySessionID},
	{"tenant", lazyTenant},
	{"clientMetadata", lazyClientMetadata},
	{"request", lazyRequest},
	{"authentication", lazyAuthentication},
	{"stats", lazyStats},
	{"sso", lazySSO},
	{"idToken", lazyEmpty},
	{"accessToken", lazyEmpty},
}

// isArrayIndex is goja's test for the keys that enumerate first.
func isArrayIndex(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || s[0] < '0' || s[0] > '9' || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

func (o *lazyObject) find(key string) int {
	if o.idx != nil {
		if i, ok := o.idx[key]; ok {
			return i
		}
		return -1
	}
	for i := range o.props {
		if o.props[i].name == key {
			return i
		}
	}
	return -1
}

// add appends a pending property (no duplicate check).
func (o *lazyObject) add(p lazyProp) {
	if p.name != "" && p.name[0] >= '0' && p.name[0] <= '9' {
		if _, ok := isArrayIndex(p.name); ok {
			o.nIdx++
		}
	}
	o.props = append(o.props, p)
	switch {
	case o.idx != nil:
		o.idx[p.name] = len(o.props) - 1
	case len(o.props) > lazyIndexMin:
		o.idx = make(map[string]int, 2*len(o.props))
		for i := range o.props {
			o.idx[o.props[i].name] = i
		}
	}
}

// Get implements goja.DynamicObject.
func (o *lazyObject) Get(key string) goja.Value {
	i := o.find(key)
	if i < 0 {
		return nil
	}
	p := &o.props[i]
	if !p.done {
		p.v, p.done = o.materialize(p), true
	}
	return p.value()
}

// Set implements goja.DynamicObject.
func (o *lazyObject) Set(key string, val goja.Value) bool {
	if val == nil {
		val = goja.Undefined()
	}
	if i := o.find(key); i >= 0 {
		o.props[i] = lazyProp{name: key, v: val, done: true}
		return true
	}
	o.add(lazyProp{name: key, v: val, done: true})
	return true
}

// Has implements goja.DynamicObject.
func (o *lazyObject) Has(key string) bool { return o.find(key) >= 0 }

// Delete implements goja.DynamicObject.
func (o *lazyObject) Delete(key string) bool {
	i := o.find(key)
	if i < 0 {
		return true
	}
	if _, ok := isArrayIndex(key); ok {
		o.nIdx--
	}
	if o.idx == nil {
		copy(o.props[i:], o.props[i+1:])
		o.props[len(o.props)-1] = lazyProp{}
		o.props = o.props[:len(o.props)-1]
		return true
	}
	delete(o.idx, key)
	o.props[i] = lazyProp{dead: true}
	if o.dead++; o.dead > len(o.props)/2 {
		live := o.props[:0]
		for _, p := range o.props {
			if !p.dead {
				o.idx[p.name] = len(live)
				live = append(live, p)
			}
		}
		clear(o.props[len(live):])
		o.props, o.dead = live, 0
	}
	return true
}

// Keys implements goja.DynamicObject: array indices ascending, then the
// other keys in insertion order, as goja orders an ordinary object's keys.
func (o *lazyObject) Keys() []string {
	keys := make([]string, 0, len(o.props)-o.dead)
	if o.nIdx > 0 {
		for _, p := range o.props {
			if _, ok := isArrayIndex(p.name); ok && !p.dead {
				keys = append(keys, p.name)
			}
		}
		slices.SortFunc(keys, func(a, b string) int {
			x, _ := isArrayIndex(a)
			y, _ := isArrayIndex(b)
			return int(int64(x) - int64(y))
		})
	}
	for _, p := range o.props {
		if p.dead {
			continue
		}
		if o.nIdx > 0 {
			if _, ok := isArrayIndex(p.name); ok {
				continue
			}
		}
		keys = append(keys, p.name)
	}
	return keys
}

// pendingEmpty reports whether key is still the untouched empty object the
// engine created (so that reading it back can be skipped).
func (o *lazyObject) pendingEmpty(key string) bool {
	i := o.find(key)
	return i >= 0 && !o.props[i].done && o.props[i].kind == lazyEmpty
}

func (o *lazyObject) materialize(p *lazyProp) goja.Value {
	rt := o.rt
	vm := rt.vm
	var c *Context
	if o.in != nil {
		c = &o.in.c
	}
	switch p.kind {
	case lazyValue:
		return rt.lazyJS(p.v)
	case lazyStrMap:
		return vm.ToValue(o.strs[p.name])
	case lazyEmpty:
		return vm.NewObject()
	case lazyClientID:
		return vm.ToValue(c.ClientID)
	case lazyClientName:
		return vm.ToValue(c.ClientName)
	case lazyConnection:
		return vm.ToValue(c.Connection)
	case lazyConnectionStrategy:
		return vm.ToValue(c.ConnectionStrategy)
	case lazyProtocol:
		if c.Protocol == "" {
			return vm.ToValue(DefaultProtocol)
		}
		return vm.ToValue(c.Protocol)
	case lazySessionID:
		return vm.ToValue(c.SessionID)
	case lazyTenant:
		return vm.ToValue(c.Tenant)
	case lazyClientMetadata:
		return rt.lazyStrings(c.ClientMetadata)
	case lazyRequest:
		return vm.NewDynamicObject(&o.in.req)
	case lazyAuthentication:
		return rt.authenticationObject(c.AuthenticationMethods)
	case lazyStats:
		return rt.lazyMap(c.Stats)
	case lazySSO:
		return rt.lazyMap(c.SSO)
	case lazyIP:
		return vm.ToValue(c.Request.IP)
	case lazyHostname:
		return vm.ToValue(c.Request.Hostname)
	case lazyUserAgent:
		return vm.ToValue(c.Request.UserAgent)
	case lazyQuery:
		return rt.lazyMap(c.Request.Query)
	case lazyBody:
		return rt.lazyMap(c.Request.Body)
	case lazyNetworks:
		nets := c.Request.Networks
		items := make([]any, len(nets))
		for i, n := range nets {
			items[i] = vm.ToValue(n)
		}
		return vm.NewArray(items...)
	case lazyGeoip:
		return rt.lazyMap(c.Request.Geoip)
	case lazyIPParts:
		return rt.numArray(o.ip.parts())
	}
	panic("rules: unknown lazy property kind")
}

// lazyAddr is an ipaddr.js address object whose octets (IPv4) or parts
// (IPv6) array is only built when a rule reads it: the module's methods
// read the numbers from ip while the array is untouched (pendingAddr).
type lazyAddr struct {
	obj   lazyObject
	props [2]lazyProp
	ip    ipVal
}

var lazyObjectType = reflect.TypeOf((*lazyObject)(nil))

// lazyAddress is newV4 / newV6 with a lazy object.
func (rt *jsRuntime) lazyAddress(v6 bool, parts []float64, zone string) *goja.Object {
	a := &lazyAddr{ip: mkIP(v6, parts...)}
	a.obj = lazyObject{rt: rt, props: a.props[:0], ip: &a.ip}
	name, proto := "octets", rt.ip.v4Proto
	if v6 {
		name, proto = "parts", rt.ip.v6Proto
	}
	a.obj.props = append(a.obj.props, lazyProp{name: name, kind: lazyIPParts})
	if zone != "" {
		a.obj.props = append(a.obj.props, lazyProp{name: "zoneId", v: rt.vm.ToValue(zone), done: true})
	}
	obj := rt.vm.NewDynamicObject(&a.obj)
	must(obj.SetPrototype(proto))
	return obj
}

// pendingAddr returns the numbers of an address object made by
// lazyAddress whose array (name) no rule has read or replaced: exactly
// what readIP would read from the array.
func pendingAddr(obj *goja.Object, name string) (ipVal, bool) {
	if obj.ExportType() != lazyObjectType {
		return ipVal{}, false
	}
	lo, _ := obj.Export().(*lazyObject)
	if lo == nil || lo.ip == nil {
		return ipVal{}, false
	}
	i := lo.find(name)
	if i < 0 || lo.props[i].done || lo.props[i].kind != lazyIPParts {
		return ipVal{}, false
	}
	return *lo.ip, true
}

// lazyMap is objectFromMap for a map that passed lazyCheck: an empty
// native object, or a lazy object with the keys sorted.
func (rt *jsRuntime) lazyMap(m map[string]any) *goja.Object {
	if len(m) == 0 {
		return rt.vm.NewObject()
	}
	o := &lazyObject{rt: rt, props: make([]lazyProp, 0, len(m))}
	o.addSorted(m)
	return rt.vm.NewDynamicObject(o)
}

// addSorted adds m's entries as pending properties in key order (as
// objectFromMap sets them). The sort runs on a stack buffer: sorting the
// properties in place would cost a write barrier per move.
func (o *lazyObject) addSorted(m map[string]any) {
	type entry struct {
		k string
		v any
	}
	var buf [24]entry
	entries := buf[:0]
	for k, v := range m {
		entries = append(entries, entry{k, v})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
	for _, e := range entries {
		o.add(lazyProp{name: e.k, v: e.v})
	}
}

// lazyStrings is toJS of a map[string]string.
func (rt *jsRuntime) lazyStrings(m map[string]string) *goja.Object {
	if len(m) == 0 {
		return rt.vm.NewObject()
	}
	o := &lazyObject{rt: rt, props: make([]lazyProp, 0, len(m)), strs: m}
	for k := range m {
		o.props = append(o.props, lazyProp{name: k, kind: lazyStrMap})
	}
	slices.SortFunc(o.props, func(a, b lazyProp) int { return strings.Compare(a.name, b.name) })
	// Only now, sorted, do the properties get counted and indexed: an
	// index built while adding would point at the unsorted positions.
	props := o.props
	o.props = props[:0]
	for _, p := range props {
		o.add(p)
	}
	return rt.vm.NewDynamicObject(o)
}

// lazyJS is toJS for a value that passed lazyCheck: the same JavaScript
// values, with maps as lazy objects.
func (rt *jsRuntime) lazyJS(v any) goja.Value {
	vm := rt.vm
	if jv, _, ok := scalarJS(vm, v); ok {
		return jv
	}
	switch x := v.(type) {
	case map[string]any:
		return rt.lazyMap(x)
	case map[string]string:
		return rt.lazyStrings(x)
	case []any:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = rt.lazyJS(e)
		}
		return vm.NewArray(items...)
	case []string:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = vm.ToValue(e)
		}
		return vm.NewArray(items...)
	case []map[string]any:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = rt.lazyMap(e)
		}
		return vm.NewArray(items...)
	}
	panic("rules: lazy value of unchecked type")
}

// lazyCheck charges b exactly what toJS(v, depth, b) would, without
// building anything. ok is false when v holds a type toJS converts through
// JSON, or a "__proto__" key: the caller then builds native objects.
func lazyCheck(v any, depth int, b *inputBudget) (ok bool, err error) {
	if depth > maxInputDepth {
		return true, errInputTooLarge
	}
	switch x := v.(type) {
	case nil:
		return true, b.add(4)
	case string:
		return true, b.add(len(x) + 2)
	case bool:
		return true, b.add(4)
	case int, int32, int64, uint32, uint64, float32, float64:
		return true, b.add(8)
	case json.Number:
		return true, b.add(len(x))
	case map[string]any:
		return lazyCheckMap(x, depth, b)
	case map[string]string:
		for k, s := range x {
			if k == "__proto__" {
				return false, nil
			}
			if err := b.add(len(k) + len(s) + 4); err != nil {
				return true, err
			}
		}
		return true, nil
	case []any:
		for _, e := range x {
			if ok, err := lazyCheck(e, depth+1, b); !ok || err != nil {
				return ok, err
			}
		}
		return true, nil
	case []string:
		for _, e := range x {
			if err := b.add(len(e) + 2); err != nil {
				return true, err
			}
		}
		return true, nil
	case []map[string]any:
		for _, e := range x {
			if ok, err := lazyCheckMap(e, depth+1, b); !ok || err != nil {
				return ok, err
			}
		}
		return true, nil
	}
	return false, nil
}

// lazyCheckMap is lazyCheck for objectFromMap(m, depth, b).
func lazyCheckMap(m map[string]any, depth int, b *inputBudget) (bool, error) {
	if depth > maxInputDepth {
		return true, errInputTooLarge
	}
	for k, v := range m {
		if k == "__proto__" {
			// Rare: left to the native path (setData makes it an own
			// data property there).
			return false, nil
		}
		if err := b.add(len(k) + 2); err != nil {
			return true, err
		}
		if ok, err := lazyCheck(v, depth+1, b); !ok || err != nil {
			return ok, err
		}
	}
	return true, nil
}

// lazyUser is buildUser with a lazy object. ok is false when the caller
// must build a native object instead (b is then left as it was).
func (rt *jsRuntime) lazyUser(in *lazyInput, m map[string]any, b *inputBudget) (obj *goja.Object, ok bool) {
	// Any problem (too large, or a value converted through JSON) is left
	// to the native path, which reports exactly the error it always did.
	saved := *b
	if ok, err := lazyCheckMap(m, 0, b); !ok || err != nil {
		*b = saved
		return nil, false
	}
	o := &in.user
	*o = lazyObject{rt: rt, props: in.userProps[:0]}
	if len(m)+2 > len(in.userProps) {
		o.props = make([]lazyProp, 0, len(m)+2)
	}
	o.addSorted(m)
	for _, k := range [...]string{"app_metadata", "user_metadata"} {
		if _, ok := m[k]; !ok {
			o.add(lazyProp{name: k, kind: lazyEmpty})
		}
	}
	return rt.vm.NewDynamicObject(o), true
}

// lazyContext is buildContext with lazy objects. ok is false when the
// caller must build native objects instead (b is then left as it was).
func (rt *jsRuntime) lazyContext(in *lazyInput, c *Context, b *inputBudget) (obj *goja.Object, ok bool) {
	saved := *b
	if ok, err := lazyCheckContext(c, b); !ok || err != nil {
		*b = saved
		return nil, false
	}
	in.c = *c
	in.ctx = lazyObject{rt: rt, in: in, props: in.ctxProps[:0]}
	in.req = lazyObject{rt: rt, in: in, props: in.reqProps[:0]}
	ctx := &in.ctx
	if len(c.Extra) > 0 {
		ctx.props = make([]lazyProp, 0, len(c.Extra)+len(contextKinds))
		ctx.addSorted(c.Extra)
		for _, f := range contextKinds {
			// The fields take precedence over Extra and, as with Set on a
			// native object, keep the position of the key they replace.
			if i := ctx.find(f.name); i >= 0 {
				ctx.props[i] = lazyProp{name: f.name, kind: f.kind}
			} else {
				ctx.add(lazyProp{name: f.name, kind: f.kind})
			}
		}
	} else {
		for _, f := range contextKinds {
			ctx.props = append(ctx.props, lazyProp{name: f.name, kind: f.kind})
		}
	}
	req := &in.req
	for _, p := range [...]lazyProp{
		{name: "ip", kind: lazyIP},
		{name: "hostname", kind: lazyHostname},
		{name: "userAgent", kind: lazyUserAgent},
		{name: "query", kind: lazyQuery},
		{name: "body", kind: lazyBody},
		{name: "networks", kind: lazyNetworks},
	} {
		req.props = append(req.props, p)
	}
	if c.Request.Geoip != nil {
		req.props = append(req.props, lazyProp{name: "geoip", kind: lazyGeoip})
	}
	in.ctxObj = rt.vm.NewDynamicObject(ctx)
	return in.ctxObj, true
}

// lazyCheckContext charges b what buildContext would.
func lazyCheckContext(c *Context, b *inputBudget) (bool, error) {
	if len(c.Extra) > 0 {
		if ok, err := lazyCheckMap(c.Extra, 0, b); !ok || err != nil {
			return ok, err
		}
	}
	top := contextStrings(c)
	request := [...][2]string{
		{"ip", c.Request.IP},
		{"hostname", c.Request.Hostname},
		{"userAgent", c.Request.UserAgent},
	}
	for _, strs := range [...][][2]string{top[:], request[:]} {
		for _, kv := range strs {
			if err := b.add(len(kv[0]) + len(kv[1]) + 4); err != nil {
				return true, err
			}
		}
	}
	if ok, err := lazyCheck(c.ClientMetadata, 1, b); !ok || err != nil {
		return ok, err
	}
	for _, m := range [...]map[string]any{c.Request.Query, c.Request.Body} {
		if ok, err := lazyCheckMap(m, 2, b); !ok || err != nil {
			return ok, err
		}
	}
	for _, n := range c.Request.Networks {
		if err := b.add(len(n) + 2); err != nil {
			return true, err
		}
	}
	if c.Request.Geoip != nil {
		if ok, err := lazyCheckMap(c.Request.Geoip, 2, b); !ok || err != nil {
			return ok, err
		}
	}
	for _, m := range c.AuthenticationMethods {
		if err := b.add(len(m.Name) + 32); err != nil {
			return true, err
		}
	}
	for _, m := range [...]map[string]any{c.Stats, c.SSO} {
		if ok, err := lazyCheckMap(m, 1, b); !ok || err != nil {
			return ok, err
		}
	}
	return true, nil
}
