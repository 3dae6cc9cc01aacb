package envoyproxy

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/net/http/httpguts"
)

// op is how one header entry of a CheckResponse is applied.
type op int

const (
	// opSet: setCopy, replace every existing value.
	opSet op = iota
	// opAdd: addCopy, one more entry.
	opAdd
	// opAppend: appendCopy, join to the first existing entry with ","
	// and only if the header exists.
	opAppend
	// opAddIfAbsent: add only when absent.
	opAddIfAbsent
	// opOverwriteIfExists: set only when present.
	opOverwriteIfExists
)

// mutation is one header entry of a CheckResponse, classified.
type mutation struct {
	op    op
	key   string // lowercase
	value string
}

// classify maps a HeaderValueOption to an operation (docs/envoy.md#header-encoding-across-envoy-versions).
//
// Newer code: the deprecated append, when present, decides (true: append,
// false: set); otherwise append_action does, and its default
// APPEND_IF_EXISTS_OR_ADD adds a second entry. Older code (legacy): only
// append counts, unset or false meaning set.
func classify(h *corev3.HeaderValueOption, legacy bool) op {
	if legacy || h.GetAppend() != nil {
		if h.GetAppend().GetValue() {
			return opAppend
		}
		return opSet
	}
	switch h.GetAppendAction() {
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		return opAddIfAbsent
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		return opSet
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		return opOverwriteIfExists
	default:
		return opAdd
	}
}

// mutations classifies a list of HeaderValueOptions. responseSide selects
// the rules for response_headers_to_add, which honour append_action in
// both generations (docs/envoy.md#header-encoding-across-envoy-versions). It fails on a header Envoy with
// validate_mutations would reject, and on pseudo-headers and host, which
// this proxy does not let a check rewrite.
func mutations(hs []*corev3.HeaderValueOption, legacy, responseSide bool) ([]mutation, error) {
	out := make([]mutation, 0, len(hs))
	for _, h := range hs {
		key := strings.ToLower(h.GetHeader().GetKey())
		value := h.GetHeader().GetValue()
		if value == "" && len(h.GetHeader().GetRawValue()) > 0 {
			value = string(h.GetHeader().GetRawValue())
		}
		if err := validHeader(key, value); err != nil {
			return nil, err
		}
		out = append(out, mutation{op: classify(h, legacy && !responseSide), key: key, value: value})
	}
	return out, nil
}

func validHeader(key, value string) error {
	switch {
	case key == "":
		return fmt.Errorf("empty header name")
	case strings.HasPrefix(key, ":") || key == "host":
		return fmt.Errorf("header %q cannot be mutated", key)
	case !httpguts.ValidHeaderFieldName(key):
		return fmt.Errorf("invalid header name %q", key)
	case !httpguts.ValidHeaderFieldValue(value):
		return fmt.Errorf("invalid value for header %q", key)
	}
	return nil
}

// applyHeaders applies ms to h in Envoy's order: every set, then every
// add, then every append, then the conditional operations.
func applyHeaders(h http.Header, ms []mutation) {
	applyInOrder(h, ms, opSet, opAdd, opAppend, opAddIfAbsent, opOverwriteIfExists)
}

// applyInOrder applies ms to h, every mutation of the first op, then
// every one of the next, and so on.
func applyInOrder(h http.Header, ms []mutation, order ...op) {
	for _, o := range order {
		for _, m := range ms {
			if m.op == o {
				applyOne(h, m)
			}
		}
	}
}

func applyOne(h http.Header, m mutation) {
	k := http.CanonicalHeaderKey(m.key)
	_, exists := h[k]
	switch m.op {
	case opSet:
		h[k] = []string{m.value}
	case opAdd:
		h[k] = append(h[k], m.value)
	case opAppend:
		if exists && len(h[k]) > 0 {
			h[k][0] += "," + m.value
		}
	case opAddIfAbsent:
		if !exists {
			h[k] = []string{m.value}
		}
	case opOverwriteIfExists:
		if exists {
			h[k] = []string{m.value}
		}
	}
}

// removeHeaders applies headers_to_remove; headers starting with ":" and
// host can never be removed (docs/envoy.md#headers-on-allow).
func removeHeaders(h http.Header, names []string) {
	for _, n := range names {
		n = strings.ToLower(n)
		if n == "" || strings.HasPrefix(n, ":") || n == "host" {
			continue
		}
		h.Del(n)
	}
}

// localReplyHeaders builds the headers of a denied (or error_response)
// local reply: every name is first removed, then each value is added, so
// that several Set-Cookie entries all arrive and Location replaces any
// earlier one (docs/envoy.md#denied-responses). Entries that only modify an existing header
// (append, overwrite-if-exists) have nothing to act on in a fresh reply
// and are dropped, as the older code drops append: true.
func localReplyHeaders(ms []mutation) http.Header {
	h := http.Header{}
	for _, m := range ms {
		if m.op == opSet || m.op == opAdd {
			h.Del(m.key)
		}
	}
	for _, m := range ms {
		switch m.op {
		case opSet, opAdd:
			h.Add(m.key, m.value)
		default:
			applyOne(h, m)
		}
	}
	return h
}

// queryParam is one key=value of a query string, undecoded.
type queryParam struct{ key, value string }

// mutateQuery applies query_parameters_to_set and
// query_parameters_to_remove to a :path the way Envoy's
// Http::Utility::QueryParamsMulti does: the query is parsed without
// decoding into a map ordered by key, set overwrites every value of a key
// (or adds it), remove deletes the key, and the query is written back as
// key=value pairs joined with "&", sorted by key. Values are used as
// given, so they must already be URL-encoded (docs/envoy.md#headers-on-allow). A path
// whose query ends up empty loses its "?".
func mutateQuery(path string, set []queryParam, remove []string) string {
	base, query, _ := strings.Cut(path, "?")
	params := map[string][]string{}
	for part := range strings.SplitSeq(query, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		params[k] = append(params[k], v)
	}
	for _, p := range set {
		params[p.key] = []string{p.value}
	}
	for _, k := range remove {
		delete(params, k)
	}
	if len(params) == 0 {
		return base
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(base)
	sep := byte('?')
	for _, k := range keys {
		for _, v := range params[k] {
			b.WriteByte(sep)
			sep = '&'
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}
