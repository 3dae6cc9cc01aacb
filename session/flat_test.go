package session

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

var flatSeeds = []string{
	`{}`,
	`{"u":"alice","id":"0123abcd","iat":1767225600,"exp":1767268800}`,
	`{"u":"alice","id":"x","t":"AAAA","iat":-1,"exp":0}`,
	`{"sid":"s","m":"otp","at":1,"iat":2,"exp":3,"ls":4,"ua":"Chrome on Linux"}`,
	`{"h":"00ff","c":1,"lu":2,"exp":3,"ua":"Firefox on Windows"}`,
	`{"u":"al\"ice"}`,
	`{"u":"zoë"}`,
	`{"U":"alice"}`,
	`{"u": "alice"}`,
	`{"u":"a","u":"b"}`,
	`{"iat":1e3}`,
	`{"iat":01}`,
	`{"iat":-0}`,
	`{"iat":99999999999999999999}`,
	`{"iat":999999999999999999}`,
	`{"iat":1.5}`,
	`{"u":null}`,
	`{"u":1}`,
	`{"iat":"1"}`,
	`{"x":1}`,
	`{"u":"a"}x`,
	`{"u":"a",}`,
	`{"u":"a"`,
	`[]`,
	``,
}

// FuzzDecodeFlat checks decodeFlat against encoding/json: whatever the fast
// path accepts, encoding/json must accept with the same result.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fc claims
		okC := decodeFlat(b, []flatField{{name: "u", str: &fc.User}, {name: "id", str: &fc.ID}, {name: "t", str: &fc.Token}, {name: "iat", num: &fc.Issued}, {name: "exp", num: &fc.Expiry}})
		if okC {
			var jc claims
			if err := json.Unmarshal(b, &jc); err != nil {
				t.Fatalf("decodeFlat accepted %q, encoding/json refuses it: %v", b, err)
			}
			if fc != jc {
				t.Fatalf("decodeFlat(%q) = %+v, encoding/json = %+v", b, fc, jc)
			}
		}
		// The decode methods must always agree with encoding/json.
		var dc, jc claims
		errD, errJ := dc.decode(b), json.Unmarshal(b, &jc)
		if (errD == nil) != (errJ == nil) || (errD == nil && dc != jc) {
			t.Fatalf("claims.decode(%q) = %+v, %v; encoding/json = %+v, %v", b, dc, errD, jc, errJ)
		}
		// decodeFor only avoids a copy: same result, for the expected
		// user and for another one.
		for _, user := range []string{"alice", "auth0|5f7c8ec7", jc.User} {
			var du claims
			if errU := du.decodeFor(b, user); (errU == nil) != (errJ == nil) || (errU == nil && du != jc) {
				t.Fatalf("claims.decodeFor(%q, %q) = %+v, %v; encoding/json = %+v, %v", b, user, du, errU, jc, errJ)
			}
		}
		var dm, jm mfaRecord
		errD, errJ = dm.decode(b), json.Unmarshal(b, &jm)
		if (errD == nil) != (errJ == nil) || (errD == nil && dm != jm) {
			t.Fatalf("mfaRecord.decode(%q) = %+v, %v; encoding/json = %+v, %v", b, dm, errD, jm, errJ)
		}
		var dd, jd deviceRecord
		errD, errJ = dd.decode(b), json.Unmarshal(b, &jd)
		if (errD == nil) != (errJ == nil) || (errD == nil && dd != jd) {
			t.Fatalf("deviceRecord.decode(%q) = %+v, %v; encoding/json = %+v, %v", b, dd, errD, jd, errJ)
		}
	})
}

func TestDecodeFlatTakesFastPath(t *testing.T) {
	for _, s := range []string{
		`{}`,
		`{"u":"alice","id":"0123abcd","iat":1767225600,"exp":1767268800}`,
		`{"u":"auth0|5f7c8ec7","id":"x","t":"AAAA-_","iat":-1,"exp":0}`,
	} {
		var c claims
		if !decodeFlat([]byte(s), []flatField{{name: "u", str: &c.User}, {name: "id", str: &c.ID}, {name: "t", str: &c.Token}, {name: "iat", num: &c.Issued}, {name: "exp", num: &c.Expiry}}) {
			t.Errorf("decodeFlat(%s) fell back; the payloads this package writes must take the fast path", s)
		}
	}
}

// decodeFor spares the copy of the expected user only: the last "u" wins,
// as with encoding/json, whichever of the duplicates is the user.
func TestClaimsDecodeForUser(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"u":"alice","id":"x"}`, "alice"},
		{`{"u":"bob","id":"x"}`, "bob"},
		{`{"u":"alice","u":"bob","id":"x"}`, "bob"},
		{`{"u":"bob","u":"alice","id":"x"}`, "alice"},
		{`{"u":"","id":"x"}`, ""},
		{`{"id":"x"}`, ""},
		{`{"u": "alice","id":"x"}`, "alice"}, // encoding/json fallback
	} {
		var c claims
		if err := c.decodeFor([]byte(tc.in), "alice"); err != nil || c.User != tc.want || c.ID != "x" {
			t.Errorf("decodeFor(%s, alice) = %+v, %v; want user %q", tc.in, c, err, tc.want)
		}
	}
}

// FuzzAppendStateJSON checks the step-up fast path against encoding/json:
// whenever appendStateJSON accepts a state, its bytes are json.Marshal's.
// TestAppendStateJSONTypical checks that the states a step-up makes do
// take the fast path.
func FuzzAppendStateJSON(f *testing.F) {
	type seed struct {
		id, user, client, ret, provider, redirect, k1, v1, k2, v2 string
		remember                                                  bool
		created, expires                                          int64
	}
	for _, s := range []seed{
		{"0123456789abcdef0123456789abcdef", "auth0|alice", "payroll", "https://app.example.com/a?b=c", "any", "", "", "", "", "", true, 1767225600, 1767226500},
		{"id", "bob", "", "", "duo", "", "ikey", "DIXXXX", "skey.sealed", "v1.AAAA", false, 0, 253402300799},
		{"id", "bob", "c", "/r", "any", "https://mfa.example.com/start", "", "", "", "", false, -1, 1},
		{"id", "bob<script>", "", "", "any", "", "", "", "", "", false, 0, 0},
		{"id", "a<b", "", "", "any", "", "", "", "", "", false, 0, 0},
		{"id", "u", "", "", "x>y", "", "", "", "", "", false, 0, 0},
		{"id", "u", "", "/a?b=1&c=2", "any", "", "", "", "", "", false, 0, 0},
		{"id", "zoë", "", "", "any", "", "", "", "", "", false, 0, 0},
		{"id", "a\"b", "", "", "any", "", "a&b", "", "", "", false, 0, 0},
		{"id", "u", "", "", "any", "", "k", "line\nbreak", "", "", false, 0, 0},
		{"id", "u", "", "", "any", "", "", "", "", "", false, 253402300800, 0},
		{"id", "u", "", "", "any", "", "", "", "", "", false, -62167219201, 0},
	} {
		f.Add(s.id, s.user, s.client, s.ret, s.provider, s.redirect, s.k1, s.v1, s.k2, s.v2, s.remember, s.created, s.expires)
	}
	f.Fuzz(func(t *testing.T, id, user, client, ret, provider, redirect, k1, v1, k2, v2 string, remember bool, created, expires int64) {
		// The host and what a redirect completes take the values of
		// other fields, so that every field meets every kind of string.
		st := State{
			ID: id, User: user, ClientID: client, ReturnURL: ret, RedirectURL: redirect, Host: k2, Completes: v2,
			Requirement: Requirement{Provider: provider, AllowRemember: remember},
			Created:     time.Unix(created, 0).UTC(),
			ExpiresAt:   time.Unix(expires, int64(expires%1000)*1e6).UTC(),
		}
		if k1 != "" || k2 != "" {
			st.Requirement.Options = map[string]string{k1: v1, k2: v2}
		}
		want, werr := json.Marshal(st)
		got, ok := appendStateJSON([]byte("prefix"), &st)
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("appendStateJSON lost the bytes it appends to: %q", got)
		}
		if !ok {
			return
		}
		if werr != nil {
			t.Fatalf("fast path accepted a state json.Marshal refuses (%v): %q", werr, got)
		}
		if got := got[len("prefix"):]; !bytes.Equal(got, want) {
			t.Fatalf("fast path differs from json.Marshal:\n got %s\nwant %s", got, want)
		}
	})
}

func TestAppendStateJSONTypical(t *testing.T) {
	now := time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)
	for _, st := range []State{
		{ID: "0123456789abcdef0123456789abcdef", User: "auth0|alice", ClientID: "payroll", Host: "app.example.com", ReturnURL: "https://app.example.com/a?b=c",
			Requirement: Requirement{Provider: "any", AllowRemember: true}, Created: now, ExpiresAt: now.Add(15 * time.Minute)},
		{ID: "id", User: "bob", Requirement: Requirement{Provider: "duo", Options: map[string]string{"ikey": "DIXXXX", "host": "api-1.duosecurity.com", "skey.sealed": "v1.AAAA-_"}},
			RedirectURL: "https://mfa.example.com/start", Completes: "redirect:sms", Host: "app.example.com", Created: now, ExpiresAt: now},
	} {
		got, ok := appendStateJSON(nil, &st)
		if !ok {
			t.Fatalf("typical state did not take the fast path: %+v", st)
		}
		want, err := json.Marshal(st)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %s, want %s (%v)", got, want, err)
		}
	}
}

// TestAppendStateJSONLocal: a time outside UTC goes to encoding/json.
func TestAppendStateJSONLocal(t *testing.T) {
	st := State{ID: "i", User: "u", Created: time.Unix(0, 0).In(time.FixedZone("X", 3600)), ExpiresAt: time.Unix(0, 0).UTC()}
	if _, ok := appendStateJSON(nil, &st); ok {
		t.Fatal("fast path took a non-UTC time")
	}
}
