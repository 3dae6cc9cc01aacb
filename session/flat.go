package session

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// flatField is one field of a flat JSON object for decodeFlat: a string
// or an integer.
type flatField struct {
	name string
	str  *string
	num  *int64
	// same, when not "", is the value the string field is expected to
	// have: when the last value read has it, *str is left alone and
	// *sameHit is set to true instead (the caller then sets *str = same),
	// which spares a copy. (Storing same through str here would make
	// every field pointer escape.)
	same    string
	sameHit *bool
}

// decodeFlat decodes b into fields when b is a compact JSON object whose
// keys are exactly the field names and whose values are printable-ASCII
// strings without escapes or integers without fraction or exponent, which
// is what this package writes. For anything else (white space, escapes,
// non-ASCII, other value types, unknown keys, overflow) it returns false,
// possibly with some fields set, and the caller must decode with
// encoding/json from a zero value instead. For every input it accepts, the
// result equals encoding/json's (FuzzDecodeFlat checks this). It exists to
// keep the cookie verification hot path nearly allocation-free.
func decodeFlat(b []byte, fields []flatField) bool {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	i := 1
	if len(b) == 2 {
		return true
	}
	for {
		key, next, ok := flatString(b, i)
		if !ok || next >= len(b) || b[next] != ':' {
			return false
		}
		i = next + 1
		var f *flatField
		for j := range fields {
			if string(key) == fields[j].name {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			return false
		}
		switch {
		case f.str != nil:
			s, next, ok := flatString(b, i)
			if !ok {
				return false
			}
			if f.sameHit != nil {
				*f.sameHit = f.same != "" && string(s) == f.same
				if *f.sameHit {
					i = next
					break
				}
			}
			*f.str = string(s)
			i = next
		case f.num != nil:
			n, next, ok := flatInt(b, i)
			if !ok {
				return false
			}
			*f.num = n
			i = next
		default:
			return false
		}
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i == len(b)-1
		default:
			return false
		}
	}
}

// flatString reads a string of printable ASCII without escapes starting at
// b[i] == '"' and returns its contents and the index after it.
func flatString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// flatInt reads -?(0|[1-9][0-9]*) fitting an int64.
func flatInt(b []byte, i int) (int64, int, bool) {
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	var n uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i-start >= 18 { // keep clear of overflow; longer numbers fall back
			return 0, 0, false
		}
		n = n*10 + uint64(b[i]-'0')
	}
	if i == start || (b[start] == '0' && i-start > 1) {
		return 0, 0, false
	}
	if neg {
		return -int64(n), i, true
	}
	return int64(n), i, true
}

// unmarshal decodes b into v with encoding/json, from a copy so that b
// does not escape in the callers' fast paths.
func unmarshal(b []byte, v any) error {
	return json.Unmarshal(bytes.Clone(b), v)
}

func (c *claims) decode(b []byte) error { return c.decodeFor(b, "") }

// decodeFor is decode for a token expected to be user's: the user name is
// then not copied out of b.
func (c *claims) decodeFor(b []byte, user string) error {
	isUser := false
	if decodeFlat(b, []flatField{
		{name: "u", str: &c.User, same: user, sameHit: &isUser},
		{name: "id", str: &c.ID},
		{name: "t", str: &c.Token},
		{name: "iat", num: &c.Issued},
		{name: "exp", num: &c.Expiry},
	}) {
		if isUser {
			c.User = user
		}
		return nil
	}
	var v claims
	err := unmarshal(b, &v)
	*c = v
	return err
}

func (r *mfaRecord) decode(b []byte) error {
	if decodeFlat(b, []flatField{
		{name: "v", num: &r.Version},
		{name: "sid", str: &r.SID},
		{name: "r", str: &r.Realm},
		{name: "p", str: &r.Proofs},
		{name: "iat", num: &r.Issued},
		{name: "exp", num: &r.Expiry},
		{name: "ls", num: &r.LastSeen},
		{name: "ua", str: &r.UserAgent},
	}) {
		return nil
	}
	var v mfaRecord
	err := unmarshal(b, &v)
	*r = v
	return err
}

func (r *deviceRecord) decode(b []byte) error {
	if decodeFlat(b, []flatField{
		{name: "v", num: &r.Version},
		{name: "h", str: &r.Hash},
		{name: "r", str: &r.Realm},
		{name: "p", str: &r.Proofs},
		{name: "c", num: &r.Created},
		{name: "lu", num: &r.LastUsed},
		{name: "exp", num: &r.Expiry},
		{name: "ua", str: &r.UserAgent},
	}) {
		return nil
	}
	var v deviceRecord
	err := unmarshal(b, &v)
	*r = v
	return err
}

// appendStateJSON appends st's JSON to b exactly as json.Marshal(st)
// would write it, when every string in st is plain (see plainString) and
// both times are UTC within years 0–9999. For anything else it returns
// false and the caller must use encoding/json. It exists because
// json.Marshal's reflection was a tenth of a step-up's CPU
// (docs/performance.md); FuzzAppendStateJSON checks it against
// json.Marshal.
func appendStateJSON(b []byte, st *State) ([]byte, bool) {
	r := &st.Requirement
	if !plainString(st.ID) || !plainString(st.User) || !plainString(st.ClientID) ||
		!plainString(st.ReturnURL) || !plainString(r.Provider) || !plainString(st.RedirectURL) ||
		!plainString(st.Host) || !plainString(st.Completes) || len(r.Factors) > 0 ||
		!plainTime(st.Created) || !plainTime(st.ExpiresAt) {
		return b, false
	}
	var keyBuf [8]string
	keys := keyBuf[:0]
	for k, v := range r.Options {
		if !plainString(k) || !plainString(v) {
			return b, false
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	b = append(b, `{"id":"`...)
	b = append(b, st.ID...)
	b = append(b, `","user":"`...)
	b = append(b, st.User...)
	b = append(b, '"')
	if st.ClientID != "" {
		b = append(b, `,"client_id":"`...)
		b = append(b, st.ClientID...)
		b = append(b, '"')
	}
	if st.Host != "" {
		b = append(b, `,"host":"`...)
		b = append(b, st.Host...)
		b = append(b, '"')
	}
	if st.ReturnURL != "" {
		b = append(b, `,"return_url":"`...)
		b = append(b, st.ReturnURL...)
		b = append(b, '"')
	}
	b = append(b, `,"requirement":{"provider":"`...)
	b = append(b, r.Provider...)
	b = append(b, `","allow_remember":`...)
	b = strconv.AppendBool(b, r.AllowRemember)
	if len(r.Options) > 0 {
		b = append(b, `,"options":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, `":"`...)
			b = append(b, r.Options[k]...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	if st.RedirectURL != "" {
		b = append(b, `,"redirect_url":"`...)
		b = append(b, st.RedirectURL...)
		b = append(b, '"')
	}
	if st.Completes != "" {
		b = append(b, `,"completes":"`...)
		b = append(b, st.Completes...)
		b = append(b, '"')
	}
	b = append(b, `,"created":"`...)
	b = st.Created.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","expires_at":"`...)
	b = st.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), true
}

// plainString reports whether encoding/json writes s as is between
// quotes: printable ASCII other than the quote, the backslash and the
// characters it escapes for HTML (<, >, &).
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// plainTime reports whether t marshals as its RFC 3339 form in UTC (the
// only location whose name json.Marshal and AppendFormat agree on without
// a lookup), with a four-digit year.
func plainTime(t time.Time) bool {
	y := t.Year()
	return t.Location() == time.UTC && y >= 0 && y <= 9999
}
