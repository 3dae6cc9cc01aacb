package rules

import (
	"net/url"
	"strings"

	"github.com/dop251/goja"
	gojaurl "github.com/dop251/goja_nodejs/url"
)

// The url module, following Node.js's documented behaviour: the legacy
// url.parse/format/resolve, and the WHATWG URL / URLSearchParams classes
// (from goja_nodejs, which touches neither files nor network), which are
// also globals.
var urlModule = nativeModule{name: "url", nodeCore: true, load: (*jsRuntime).loadURL}

// legacyURL is the result of url.parse.
type legacyURL struct {
	protocol, auth, host, port, hostname, hash, search, query, pathname *string
	slashes                                                             bool
}

var (
	slashedProtocols  = map[string]bool{"http:": true, "https:": true, "ftp:": true, "gopher:": true, "file:": true, "ws:": true, "wss:": true}
	hostlessProtocols = map[string]bool{"javascript:": true}
)

func sp(s string) *string { return &s }

// parseLegacyURL follows Node's url.parse: it never fails, lower-cases the
// protocol and host, and turns backslashes before the query into slashes.
func parseLegacyURL(s string, slashesDenoteHost bool) legacyURL {
	var u legacyURL
	rest := strings.TrimSpace(s)
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = strings.ReplaceAll(rest[:i], "\\", "/") + rest[i:]
	} else {
		rest = strings.ReplaceAll(rest, "\\", "/")
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		u.hash = sp(autoEscape(rest[i:]))
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		u.search = sp(autoEscape(rest[i:]))
		u.query = sp(autoEscape(rest[i+1:]))
		rest = rest[:i]
	}
	proto := ""
	for i := 0; i < len(rest); i++ {
		c := rest[i] | 0x20
		if rest[i] == ':' && i > 0 {
			proto = strings.ToLower(rest[:i+1])
			rest = rest[i+1:]
			break
		}
		if !(c >= 'a' && c <= 'z' || rest[i] >= '0' && rest[i] <= '9' || strings.IndexByte(".+-", rest[i]) >= 0) {
			break
		}
	}
	if proto != "" {
		u.protocol = sp(proto)
	}
	if slashesDenoteHost || proto != "" {
		if strings.HasPrefix(rest, "//") && !(proto != "" && hostlessProtocols[proto]) {
			u.slashes = true
			rest = rest[2:]
		}
	}
	if !hostlessProtocols[proto] && (u.slashes || (proto != "" && !slashedProtocols[proto])) {
		hostEnd := strings.IndexAny(rest, "/?#")
		if hostEnd < 0 {
			hostEnd = len(rest)
		}
		at := strings.LastIndexByte(rest[:hostEnd], '@')
		if at >= 0 {
			u.auth = sp(qsUnescape(rest[:at], false))
			rest = rest[at+1:]
		}
		hostEnd = strings.IndexAny(rest, "/?#;")
		if hostEnd < 0 {
			hostEnd = len(rest)
		}
		host := rest[:hostEnd]
		rest = rest[hostEnd:]
		hostname := host
		port := ""
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
			if p := host[i+1:]; strings.Trim(p, "0123456789") == "" {
				port = p
				hostname = host[:i]
			}
		}
		if port != "" {
			u.port = sp(port)
		}
		ipv6 := strings.HasPrefix(hostname, "[") && strings.HasSuffix(hostname, "]")
		if ipv6 {
			hostname = hostname[1 : len(hostname)-1]
		}
		hostname = strings.ToLower(hostname)
		u.hostname = sp(hostname)
		h := hostname
		if ipv6 {
			h = "[" + hostname + "]"
		}
		if port != "" {
			h += ":" + port
		}
		u.host = sp(h)
	}
	if rest != "" {
		u.pathname = sp(autoEscape(rest))
	}
	if u.protocol != nil && slashedProtocols[*u.protocol] && u.hostname != nil && *u.hostname != "" && u.pathname == nil {
		u.pathname = sp("/")
	}
	return u
}

// autoEscape escapes the characters Node's url.parse always escapes.
func autoEscape(s string) string {
	const set = "'{}|\\^`<>\" \r\n\t"
	if !strings.ContainsAny(s, set) {
		return s
	}
	return escapeSet(s, set)
}

func escapeSet(s, set string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(set, c) >= 0 {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// formatLegacy implements url.format for a legacy URL object.
func (rt *jsRuntime) formatLegacy(obj *goja.Object) string {
	get := func(k string) string {
		v := obj.Get(k)
		if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
			return ""
		}
		return v.String()
	}
	auth := get("auth")
	if auth != "" {
		auth = strings.Replace(qsEscape(auth), "%3A", ":", 1) + "@"
	}
	protocol, pathname, hash := get("protocol"), get("pathname"), get("hash")
	host := ""
	hasHost := false
	if h := get("host"); h != "" {
		host, hasHost = auth+h, true
	} else if hn := get("hostname"); hn != "" {
		if strings.Contains(hn, ":") {
			hn = "[" + hn + "]"
		}
		host, hasHost = auth+hn, true
		if p := get("port"); p != "" {
			host += ":" + p
		}
	}
	query := ""
	if q, ok := obj.Get("query").(*goja.Object); ok && len(q.Keys()) > 0 {
		query = rt.qsStringify(q, goja.Undefined(), goja.Undefined())
	}
	search := get("search")
	if search == "" && query != "" {
		search = "?" + query
	}
	if protocol != "" && !strings.HasSuffix(protocol, ":") {
		protocol += ":"
	}
	slashes := obj.Get("slashes")
	if (slashes != nil && slashes.ToBoolean()) || ((protocol == "" || slashedProtocols[protocol]) && hasHost) {
		host = "//" + host
		if pathname != "" && pathname[0] != '/' {
			pathname = "/" + pathname
		}
	}
	if hash != "" && hash[0] != '#' {
		hash = "#" + hash
	}
	if search != "" && search[0] != '?' {
		search = "?" + search
	}
	pathname = strings.NewReplacer("?", "%3F", "#", "%23").Replace(pathname)
	search = strings.Replace(search, "#", "%23", 1)
	return protocol + host + pathname + search + hash
}

func (rt *jsRuntime) legacyURLObject(u legacyURL, parseQuery bool) *goja.Object {
	vm := rt.vm
	obj := vm.NewObject()
	val := func(p *string) goja.Value {
		if p == nil {
			return goja.Null()
		}
		return vm.ToValue(*p)
	}
	must(obj.Set("protocol", val(u.protocol)))
	must(obj.Set("slashes", u.slashes))
	must(obj.Set("auth", val(u.auth)))
	must(obj.Set("host", val(u.host)))
	must(obj.Set("port", val(u.port)))
	must(obj.Set("hostname", val(u.hostname)))
	must(obj.Set("hash", val(u.hash)))
	if parseQuery {
		q := ""
		if u.query != nil {
			q = *u.query
		}
		if u.search == nil {
			must(obj.Set("search", ""))
		} else {
			must(obj.Set("search", *u.search))
		}
		must(obj.Set("query", rt.qsParse(vm.ToValue(q), goja.Undefined(), goja.Undefined(), goja.Undefined())))
	} else {
		must(obj.Set("search", val(u.search)))
		must(obj.Set("query", val(u.query)))
	}
	must(obj.Set("pathname", val(u.pathname)))
	var path *string
	if u.pathname != nil || u.search != nil {
		p := ""
		if u.pathname != nil {
			p = *u.pathname
		}
		if u.search != nil {
			p += *u.search
		}
		path = &p
	}
	must(obj.Set("path", val(path)))
	must(obj.Set("href", rt.formatLegacy(obj)))
	return obj
}

// loadURL builds the url module's exports.
func (rt *jsRuntime) loadURL() *goja.Object {
	vm := rt.vm
	o := rt.whatwgURL()
	must(o.Set("parse", func(call goja.FunctionCall) goja.Value {
		s, ok := call.Argument(0).Export().(string)
		if !ok {
			panic(vm.NewTypeError("The \"url\" argument must be of type string. Received " + rt.inspect(call.Argument(0))))
		}
		return rt.legacyURLObject(parseLegacyURL(s, call.Argument(2).ToBoolean()), call.Argument(1).ToBoolean())
	}))
	must(o.Set("format", func(call goja.FunctionCall) goja.Value {
		a := call.Argument(0)
		if s, ok := a.Export().(string); ok {
			return vm.ToValue(rt.formatLegacy(rt.legacyURLObject(parseLegacyURL(s, false), false)))
		}
		obj, ok := a.(*goja.Object)
		if !ok {
			panic(vm.NewTypeError("The \"urlObject\" argument must be one of type object or string."))
		}
		if href := obj.Get("href"); href != nil && obj.Get("searchParams") != nil && !goja.IsUndefined(obj.Get("searchParams")) {
			// A WHATWG URL.
			return vm.ToValue(href.String())
		}
		return vm.ToValue(rt.formatLegacy(obj))
	}))
	must(o.Set("resolve", func(call goja.FunctionCall) goja.Value {
		from, to := call.Argument(0).String(), call.Argument(1).String()
		base, err1 := url.Parse(from)
		ref, err2 := url.Parse(to)
		if err1 != nil || err2 != nil {
			return vm.ToValue(to)
		}
		return vm.ToValue(base.ResolveReference(ref).String())
	}))
	return o
}

// whatwgURL loads goja_nodejs's WHATWG URL implementation (it touches no
// file system or network) into a fresh exports object.
func (rt *jsRuntime) whatwgURL() *goja.Object {
	mod := rt.vm.NewObject()
	exports := rt.vm.NewObject()
	must(mod.Set("exports", exports))
	gojaurl.Require(rt.vm, mod)
	return exports
}
