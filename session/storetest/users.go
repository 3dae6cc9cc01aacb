package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stepup-dev/stepup/session"
)

// The user-record contract: a user's records, names, expiry, updates,
// deletion, and reading one's own writes.

func testUserRecords(t *testing.T, s *suite) {
	now := s.Now()
	put := []struct {
		user, kind, id, val string
		ttl                 time.Duration
	}{
		{"alice", "mfa", "s2", "alice mfa s2", 2 * long},
		{"alice", "mfa", "s1", "alice mfa s1", long},
		{"alice", "device", "d1", "alice device d1", 3 * long},
		{"alice2", "mfa", "s1", "alice2 mfa s1", long},
		{"ali", "mfa", "s1", "ali mfa s1", long},
		{"bob", "device", "d1", "bob device d1", long},
	}
	for _, p := range put {
		if err := s.Store.PutUser(s.ctx, p.user, p.kind, p.id, []byte(p.val), p.ttl); err != nil {
			t.Fatalf("PutUser(%s, %s, %s): %v", p.user, p.kind, p.id, err)
		}
	}
	for _, p := range put {
		got, err := s.Store.GetUser(s.ctx, p.user, p.kind, p.id)
		if err != nil || string(got) != p.val {
			t.Errorf("GetUser(%s, %s, %s) = %q, %v; want %q", p.user, p.kind, p.id, got, err, p.val)
		}
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "device", "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetUser(other kind) error = %v, want ErrNotFound", err)
	}
	rec := func(kind, id, val string, ttl time.Duration) session.Record {
		return session.Record{Kind: kind, ID: id, Value: []byte(val), ExpiresAt: now.Add(ttl)}
	}
	tests := []struct {
		user, kind string
		want       []session.Record
	}{
		{"alice", "mfa", []session.Record{rec("mfa", "s1", "alice mfa s1", long), rec("mfa", "s2", "alice mfa s2", 2*long)}},
		{"alice", "device", []session.Record{rec("device", "d1", "alice device d1", 3*long)}},
		{"alice", "", []session.Record{rec("device", "d1", "alice device d1", 3*long), rec("mfa", "s1", "alice mfa s1", long), rec("mfa", "s2", "alice mfa s2", 2*long)}},
		{"alice2", "", []session.Record{rec("mfa", "s1", "alice2 mfa s1", long)}},
		{"ali", "", []session.Record{rec("mfa", "s1", "ali mfa s1", long)}},
		{"bob", "mfa", nil},
		{"carol", "", nil},
	}
	for _, tt := range tests {
		got, err := s.Store.ListUser(s.ctx, tt.user, tt.kind)
		if err != nil {
			t.Errorf("ListUser(%s, %q): %v", tt.user, tt.kind, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(s.skew+time.Millisecond)); diff != "" {
			t.Errorf("ListUser(%s, %q) (-want +got):\n%s", tt.user, tt.kind, diff)
		}
	}
}

func testUserNames(t *testing.T, s *suite) {
	users := []string{
		"auth0|5f7c8ec7c33c6c004bbafe82",
		"google-oauth2|1234",
		"a:b",
		"a",
		"a:",
		"{tag}",
		"}{",
		"x}:mfa:y",
		"100%",
		"%7B",
		"Zoë Ünïcode 用户",
		"with space",
		"mfa",
	}
	for i, u := range users {
		if err := s.Store.PutUser(s.ctx, u, "mfa", "id", []byte(strconv.Itoa(i)), long); err != nil {
			t.Fatalf("PutUser(%q): %v", u, err)
		}
	}
	for i, u := range users {
		recs, err := s.Store.ListUser(s.ctx, u, "")
		if err != nil {
			t.Fatalf("ListUser(%q): %v", u, err)
		}
		if len(recs) != 1 || string(recs[0].Value) != strconv.Itoa(i) {
			t.Errorf("ListUser(%q) = %+v, want only its own record %d", u, recs, i)
		}
	}
	if n, err := s.Store.DeleteUser(s.ctx, "a", "", ""); err != nil || n != 1 {
		t.Errorf("DeleteUser(a) = %d, %v; want 1, nil", n, err)
	}
	for i, u := range users {
		got, err := s.Store.GetUser(s.ctx, u, "mfa", "id")
		if u == "a" {
			if !errors.Is(err, session.ErrNotFound) {
				t.Errorf("GetUser(a) after delete error = %v, want ErrNotFound", err)
			}
			continue
		}
		if err != nil || string(got) != strconv.Itoa(i) {
			t.Errorf("GetUser(%q) = %q, %v; want %d: deleting user a touched it", u, got, err, i)
		}
	}
}

func testUserExpiry(t *testing.T, s *suite) {
	u := s.unit
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "long", []byte("l"), long); err != nil {
		t.Fatal(err)
	}
	start := s.Now()
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "short", []byte("s"), 2*u); err != nil {
		t.Fatal(err)
	}
	s.Advance(u)
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "short"); s.inTime(t, start, 2*u) && err != nil {
		t.Errorf("GetUser before expiry: %v", err)
	}
	s.Advance(3 * u / 2)
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "short"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetUser after expiry error = %v, want ErrNotFound", err)
	}
	recs, err := s.Store.ListUser(s.ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if ids := recordIDs(recs); !slices.Equal(ids, []string{"long"}) {
		t.Errorf("ListUser after expiry = %v, want [long]", ids)
	}
}

func testUpdateUser(t *testing.T, s *suite) {
	u := s.unit
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("x"), long); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser(missing) created a record: GetUser error = %v", err)
	}
	start := s.Now()
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("v1"), 2*u); err != nil {
		t.Fatal(err)
	}
	err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("v2"), 4*u)
	if s.inTime(t, start, 2*u) && err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	s.Advance(3 * u)
	recs, err := s.Store.ListUser(s.ctx, "alice", "mfa")
	if s.inTime(t, start, 4*u) && (err != nil || len(recs) != 1 || string(recs[0].Value) != "v2") {
		t.Fatalf("ListUser after UpdateUser = %+v, %v; want one record v2 whose TTL was extended", recs, err)
	}
	if n, err := s.Store.DeleteUser(s.ctx, "alice", "mfa", "s1"); err != nil || n != 1 {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("v3"), long); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser after DeleteUser error = %v, want ErrNotFound", err)
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser resurrected a deleted record: GetUser error = %v", err)
	}
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s2", []byte("v"), u); err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * u)
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s2", []byte("v"), long); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser(expired) error = %v, want ErrNotFound", err)
	}
}

func testDeleteUser(t *testing.T, s *suite) {
	u := s.unit
	for _, r := range []struct{ user, kind, id string }{
		{"alice", "mfa", "s1"}, {"alice", "mfa", "s2"}, {"alice", "device", "d1"}, {"alice", "device", "d2"},
		{"alice", "other", "o1"}, {"bob", "mfa", "s1"}, {"bob", "device", "d1"},
	} {
		if err := s.Store.PutUser(s.ctx, r.user, r.kind, r.id, []byte("v"), long); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "expiring", []byte("v"), u); err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * u)
	steps := []struct {
		kind, id string
		want     int
		left     []string
	}{
		{"mfa", "nope", 0, []string{"device/d1", "device/d2", "mfa/s1", "mfa/s2", "other/o1"}},
		{"mfa", "s1", 1, []string{"device/d1", "device/d2", "mfa/s2", "other/o1"}},
		{"mfa", "s1", 0, []string{"device/d1", "device/d2", "mfa/s2", "other/o1"}},
		{"device", "", 2, []string{"mfa/s2", "other/o1"}},
		{"", "", 2, nil},
		{"", "", 0, nil},
	}
	for _, st := range steps {
		n, err := s.Store.DeleteUser(s.ctx, "alice", st.kind, st.id)
		if err != nil || n != st.want {
			t.Errorf("DeleteUser(alice, %q, %q) = %d, %v; want %d, nil", st.kind, st.id, n, err, st.want)
		}
		recs, err := s.Store.ListUser(s.ctx, "alice", "")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.left, kindIDs(recs), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("after DeleteUser(alice, %q, %q) records (-want +got):\n%s", st.kind, st.id, diff)
		}
	}
	recs, err := s.Store.ListUser(s.ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"device/d1", "mfa/s1"}, kindIDs(recs)); diff != "" {
		t.Errorf("bob's records after deleting alice's (-want +got):\n%s", diff)
	}
	// A record written after a delete-all is a new one and stays.
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s9", []byte("v"), long); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s9"); err != nil {
		t.Errorf("GetUser after delete-all and PutUser: %v", err)
	}
}

// testUserReadAfterWrite: GetUser sees every write that returned before
// it, also when it read the record just before the write (a store with a
// read cache must drop what it wrote).
func testUserReadAfterWrite(t *testing.T, s *suite) {
	get := func(kind, id string) string {
		t.Helper()
		v, err := s.Store.GetUser(s.ctx, "alice", kind, id)
		if errors.Is(err, session.ErrNotFound) {
			return "<not found>"
		} else if err != nil {
			t.Fatalf("GetUser(alice, %s, %s): %v", kind, id, err)
		}
		return string(v)
	}
	expect := func(step string, want map[[2]string]string) {
		t.Helper()
		for k, w := range want {
			for range 2 { // the second read may come from a cache
				if got := get(k[0], k[1]); got != w {
					t.Errorf("%s: GetUser(alice, %s, %s) = %q, want %q", step, k[0], k[1], got, w)
				}
			}
		}
	}
	s1, s2, d1 := [2]string{"mfa", "s1"}, [2]string{"mfa", "s2"}, [2]string{"device", "d1"}
	for _, k := range [][2]string{s1, s2, d1} {
		if err := s.Store.PutUser(s.ctx, "alice", k[0], k[1], []byte("v1"), long); err != nil {
			t.Fatal(err)
		}
	}
	expect("after PutUser", map[[2]string]string{s1: "v1", s2: "v1", d1: "v1"})
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("v2"), long); err != nil {
		t.Fatal(err)
	}
	expect("after a replacing PutUser", map[[2]string]string{s1: "v2", s2: "v1"})
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("v3"), long); err != nil {
		t.Fatal(err)
	}
	expect("after UpdateUser", map[[2]string]string{s1: "v3", s2: "v1"})
	if _, err := s.Store.DeleteUser(s.ctx, "alice", "mfa", "s1"); err != nil {
		t.Fatal(err)
	}
	expect("after deleting one record", map[[2]string]string{s1: "<not found>", s2: "v1", d1: "v1"})
	if _, err := s.Store.DeleteUser(s.ctx, "alice", "mfa", ""); err != nil {
		t.Fatal(err)
	}
	expect("after deleting a kind", map[[2]string]string{s2: "<not found>", d1: "v1"})
	if _, err := s.Store.DeleteUser(s.ctx, "alice", "", ""); err != nil {
		t.Fatal(err)
	}
	expect("after deleting the user", map[[2]string]string{d1: "<not found>"})
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("v4"), long); err != nil {
		t.Fatal(err)
	}
	expect("after a new PutUser", map[[2]string]string{s1: "v4"})
}

// testUserReadAfterWriteConcurrent: while a record is updated again and
// again, concurrent readers never see a value older than the last update
// that returned before their read began.
func testUserReadAfterWriteConcurrent(t *testing.T, s *suite) {
	const updates = 100
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("0"), long); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		committed int
		done      bool
		wg        sync.WaitGroup
		errs      []error
	)
	state := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return committed, done
	}
	for range 4 {
		wg.Go(func() {
			for {
				floor, stop := state()
				if stop {
					return
				}
				v, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s1")
				n, perr := strconv.Atoi(string(v))
				switch {
				case err != nil:
					err = fmt.Errorf("GetUser: %w", err)
				case perr != nil:
					err = fmt.Errorf("GetUser = %q", v)
				case n < floor:
					err = fmt.Errorf("GetUser = %d after update %d had returned", n, floor)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	for i := 1; i <= updates; i++ {
		if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte(strconv.Itoa(i)), long); err != nil {
			t.Error(err)
			break
		}
		mu.Lock()
		committed = i
		mu.Unlock()
	}
	mu.Lock()
	done = true
	mu.Unlock()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}
