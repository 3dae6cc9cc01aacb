package cidr_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/stepup-dev/stepup/cidr"
)

// parsePrefixCases doubles as the seed corpus of FuzzParsePrefix.
var parsePrefixCases = []struct {
	name, in string
	want     string // canonical prefix; "" means an error is expected
}{
	{"v4", "10.0.0.0/8", "10.0.0.0/8"},
	{"v4 host route", "192.0.2.1/32", "192.0.2.1/32"},
	{"v4 default", "0.0.0.0/0", "0.0.0.0/0"},
	{"v6", "2001:db8::/32", "2001:db8::/32"},
	{"v6 default", "::/0", "::/0"},
	{"v6 host route", "2001:db8::1/128", "2001:db8::1/128"},
	{"bare v4", "192.0.2.7", "192.0.2.7/32"},
	{"bare v6", "2001:db8::7", "2001:db8::7/128"},
	{"v4 host bits masked", "10.1.2.3/8", "10.0.0.0/8"},
	{"v6 host bits masked", "2001:db8:1:2::5/48", "2001:db8:1::/48"},
	{"mapped prefix", "::ffff:10.0.0.0/104", "10.0.0.0/8"},
	{"mapped prefix hex", "::ffff:a00:0/104", "10.0.0.0/8"},
	{"mapped whole v4", "::ffff:0.0.0.0/96", "0.0.0.0/0"},
	{"mapped host bits", "::ffff:192.168.1.140/120", "192.168.1.0/24"},
	{"bare mapped", "::ffff:192.168.1.140", "192.168.1.140/32"},
	{"short mapped stays v6", "::ffff:0.0.0.0/80", "::/80"},
	{"v4-compatible stays v6", "::10.0.0.1", "::a00:1/128"},
	{"empty", "", ""},
	{"garbage", "corporate", ""},
	{"bad octet", "10.0.0.300/8", ""},
	{"v4 bits too long", "10.0.0.0/33", ""},
	{"v6 bits too long", "2001:db8::/129", ""},
	{"negative bits", "10.0.0.0/-1", ""},
	{"missing bits", "10.0.0.0/", ""},
	{"missing addr", "/8", ""},
	{"zone", "fe80::1%eth0", ""},
	{"zone in prefix", "fe80::1%eth0/64", ""},
	{"leading space", " 10.0.0.0/8", ""},
	{"trailing space", "10.0.0.0/8 ", ""},
	{"two slashes", "10.0.0.0/8/8", ""},
	{"ip range", "10.0.0.1-10.0.0.9", ""},
	{"brackets", "[2001:db8::1]", ""},
	{"port", "192.0.2.1:80", ""},
	{"short v4", "10.1/16", ""},
}

func TestParsePrefix(t *testing.T) {
	for _, tc := range parsePrefixCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cidr.ParsePrefix(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ParsePrefix(%q) = %v, want error", tc.in, got)
				}
				if !errors.Is(err, cidr.ErrInvalidPrefix) {
					t.Errorf("ParsePrefix(%q) error %v does not wrap ErrInvalidPrefix", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefix(%q): %v", tc.in, err)
			}
			if want := netip.MustParsePrefix(tc.want); got != want {
				t.Errorf("ParsePrefix(%q) = %v, want %v", tc.in, got, want)
			}
		})
	}
}

// fixture is the networks of most Lookup cases.
var fixture = map[string][]string{
	"corporate":     {"10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"},
	"vpn":           {"10.8.0.0/16", "2001:db8:8::/48"},
	"office.berlin": {"192.168.1.128/25", "::ffff:172.16.0.0/108"}, // the latter is 172.16.0.0/12
	"bastion":       {"10.8.0.1"},
	"lab-1":         {"10.200.3.4/16"}, // host bits: 10.200.0.0/16
	"dup_a":         {"203.0.113.0/24"},
	"dup_b":         {"203.0.113.0/24", "203.0.113.0/24", "203.0.113.9/24"},
	"empty":         {},
}

func TestLookup(t *testing.T) {
	everything := map[string][]string{
		"any4": {"0.0.0.0/0"},
		"any6": {"::/0"},
		"one":  {"198.51.100.1"},
	}
	tests := []struct {
		name     string
		networks map[string][]string
		addr     string // "" is the invalid zero Addr
		want     []string
	}{
		{"v4 one network", fixture, "10.1.2.3", []string{"corporate"}},
		{"v4 nested networks", fixture, "10.8.0.2", []string{"corporate", "vpn"}},
		{"bare ip in nested networks", fixture, "10.8.0.1", []string{"bastion", "corporate", "vpn"}},
		{"host bits were masked", fixture, "10.200.9.9", []string{"corporate", "lab-1"}},
		{"v4 outer only", fixture, "192.168.1.5", []string{"corporate"}},
		{"v4 inner", fixture, "192.168.1.140", []string{"corporate", "office.berlin"}},
		{"mapped addr", fixture, "::ffff:192.168.1.140", []string{"corporate", "office.berlin"}},
		{"mapped addr outer only", fixture, "::ffff:10.0.0.1", []string{"corporate"}},
		{"mapped prefix matches v4", fixture, "172.16.5.5", []string{"office.berlin"}},
		{"mapped prefix matches mapped", fixture, "::ffff:172.31.255.255", []string{"office.berlin"}},
		{"mapped prefix edge miss", fixture, "172.32.0.0", nil},
		{"same prefix two networks", fixture, "203.0.113.7", []string{"dup_a", "dup_b"}},
		{"v6", fixture, "2001:db8:1::1", []string{"corporate"}},
		{"v6 nested", fixture, "2001:db8:8::1", []string{"corporate", "vpn"}},
		{"v6 zone ignored", fixture, "2001:db8:8::1%eth0", []string{"corporate", "vpn"}},
		{"v6 miss", fixture, "2001:db9::1", nil},
		{"v6 link local miss", fixture, "fe80::1", nil},
		{"v4 miss", fixture, "8.8.8.8", nil},
		{"v4 miss next to range", fixture, "11.0.0.0", nil},
		{"v4-compatible is not mapped", fixture, "::10.0.0.1", nil},
		{"invalid addr", fixture, "", nil},
		{"empty set", map[string][]string{}, "10.0.0.1", nil},
		{"only empty networks", map[string][]string{"a": nil, "b": {}}, "10.0.0.1", nil},
		{"default v4", everything, "198.51.100.1", []string{"any4", "one"}},
		{"default v4 mapped", everything, "::ffff:1.2.3.4", []string{"any4"}},
		{"default v6", everything, "2001:db8::1", []string{"any6"}},
		{"v6 default does not match v4", everything, "0.0.0.0", []string{"any4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := cidr.New(tc.networks)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			var addr netip.Addr
			if tc.addr != "" {
				addr = netip.MustParseAddr(tc.addr)
			}
			got := s.Lookup(addr)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Lookup(%s) mismatch (-want +got):\n%s", tc.addr, diff)
			}
			if brute := bruteLookup(mustParseAll(t, tc.networks), addr); !slices.Equal(brute, got) {
				t.Errorf("Lookup(%s) = %q, brute force says %q", tc.addr, got, brute)
			}
			for _, name := range append(s.Names(), "no-such-network") {
				want := slices.Contains(tc.want, name)
				if got := s.Contains(name, addr); got != want {
					t.Errorf("Contains(%q, %s) = %t, want %t", name, tc.addr, got, want)
				}
			}
		})
	}
}

func TestSetAccessors(t *testing.T) {
	s, err := cidr.New(fixture)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"bastion", "corporate", "dup_a", "dup_b", "empty", "lab-1", "office.berlin", "vpn"}
	if diff := cmp.Diff(wantNames, s.Names()); diff != "" {
		t.Errorf("Names mismatch (-want +got):\n%s", diff)
	}
	wantPrefixes := map[string][]netip.Prefix{
		"corporate":     pfx("10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"),
		"office.berlin": pfx("172.16.0.0/12", "192.168.1.128/25"), // sorted, v4 form
		"dup_b":         pfx("203.0.113.0/24"),                    // de-duplicated after masking
		"lab-1":         pfx("10.200.0.0/16"),
		"empty":         nil,
		"missing":       nil,
	}
	for name, want := range wantPrefixes {
		if diff := cmp.Diff(want, s.Prefixes(name), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("Prefixes(%q) mismatch (-want +got):\n%s", name, diff)
		}
	}
	// corporate 3, vpn 2, office.berlin 2, bastion 1, lab-1 1, dup_a 1, dup_b 1.
	if got, want := s.Len(), 11; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}

	// Callers own what Names and Prefixes return.
	s.Names()[0] = "changed"
	s.Prefixes("corporate")[0] = netip.Prefix{}
	if s.Names()[0] != "bastion" || s.Prefixes("corporate")[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Error("changing a returned slice changed the Set")
	}
}

func TestNewDoesNotModifyInput(t *testing.T) {
	in := map[string][]netip.Prefix{"n": pfx("10.9.0.0/16", "10.1.2.3/8", "10.9.0.0/16")}
	want := slices.Clone(in["n"])
	if _, err := cidr.NewFromPrefixes(in); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, in["n"], cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("NewFromPrefixes changed its input (-want +got):\n%s", diff)
	}
}

func TestLookupInterned(t *testing.T) {
	s, err := cidr.New(map[string][]string{
		"a": {"10.0.0.0/8", "172.16.0.0/12", "2001:db8::/32"},
		"b": {"10.1.0.0/16", "172.16.1.0/24"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Three different most-specific prefixes with the same combination of
	// names must share one slice.
	x := s.Lookup(netip.MustParseAddr("10.0.0.1"))
	y := s.Lookup(netip.MustParseAddr("172.17.0.1"))
	z := s.Lookup(netip.MustParseAddr("2001:db8::1"))
	if !slices.Equal(x, []string{"a"}) || &x[0] != &y[0] || &x[0] != &z[0] {
		t.Errorf("equal answers are not interned: %p %p %p", x, y, z)
	}
	u := s.Lookup(netip.MustParseAddr("10.1.0.1"))
	v := s.Lookup(netip.MustParseAddr("172.16.1.1"))
	if !slices.Equal(u, []string{"a", "b"}) || &u[0] != &v[0] {
		t.Errorf("equal answers are not interned: %p %p", u, v)
	}
}

func TestNewErrors(t *testing.T) {
	type bad struct {
		Network string
		Index   int
	}
	tests := []struct {
		name      string
		networks  map[string][]string
		wantBad   []bad    // every *EntryError, in order
		wantNames []string // every bad name, in order
	}{
		{
			name: "every bad entry at once",
			networks: map[string][]string{
				"corporate": {"10.0.0.0/8", "10.0.0.300/8", "", "2001:db8::/32", "fe80::1%eth0"},
				"vpn":       {"not-an-ip", "10.8.0.0/16", "10.8.0.0/33"},
				"fine":      {"192.0.2.0/24"},
			},
			wantBad: []bad{{"corporate", 1}, {"corporate", 2}, {"corporate", 4}, {"vpn", 0}, {"vpn", 2}},
		},
		{
			name: "bad names and entries",
			networks: map[string][]string{
				"":           {"10.0.0.0/8"},
				"with space": {"10.0.0.0/8"},
				"ünïcode":    {"bogus"},
				"ok.name_-9": {"10.0.0.0/8"},
			},
			wantNames: []string{`""`, `"with space"`, `"ünïcode"`},
			wantBad:   []bad{{"ünïcode", 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := cidr.New(tc.networks)
			if err == nil {
				t.Fatalf("New = %v, want error", s)
			}
			if s != nil {
				t.Errorf("New returned a Set along with error %v", err)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error %T is not a joined error", err)
			}
			var gotBad []bad
			var gotNames []string
			for _, e := range joined.Unwrap() {
				var ee *cidr.EntryError
				switch {
				case errors.As(e, &ee):
					gotBad = append(gotBad, bad{ee.Network, ee.Index})
					if !errors.Is(e, cidr.ErrInvalidPrefix) {
						t.Errorf("%v does not wrap ErrInvalidPrefix", e)
					}
					if want := fmt.Sprintf("network %q entry %d: ", ee.Network, ee.Index); !strings.HasPrefix(e.Error(), want) {
						t.Errorf("error %q does not start with %q", e, want)
					}
					if want := tc.networks[ee.Network][ee.Index]; ee.Entry != want {
						t.Errorf("EntryError.Entry = %q, want %q", ee.Entry, want)
					}
				case errors.Is(e, cidr.ErrInvalidName):
					msg := e.Error()
					rest, ok := strings.CutPrefix(msg, "invalid network name ")
					if !ok {
						t.Errorf("name error %q has no expected prefix", msg)
						continue
					}
					name, err := strconv.QuotedPrefix(rest)
					if err != nil {
						t.Errorf("name error %q does not quote the name", msg)
						continue
					}
					gotNames = append(gotNames, name)
				default:
					t.Errorf("unexpected error %v", e)
				}
			}
			if diff := cmp.Diff(tc.wantBad, gotBad); diff != "" {
				t.Errorf("bad entries mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantNames, gotNames); diff != "" {
				t.Errorf("bad names mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewFromPrefixes(t *testing.T) {
	_, err := cidr.NewFromPrefixes(map[string][]netip.Prefix{
		"a": {netip.MustParsePrefix("10.0.0.0/8"), {}},
		"":  {netip.MustParsePrefix("10.0.0.0/8")},
	})
	var ee *cidr.EntryError
	if !errors.As(err, &ee) || ee.Network != "a" || ee.Index != 1 || !errors.Is(err, cidr.ErrInvalidPrefix) {
		t.Errorf("NewFromPrefixes error = %v, want an EntryError for a[1]", err)
	}
	if !errors.Is(err, cidr.ErrInvalidName) {
		t.Errorf("NewFromPrefixes error = %v, want ErrInvalidName too", err)
	}

	// Prefixes are canonicalised like ParsePrefix does.
	s, err := cidr.NewFromPrefixes(map[string][]netip.Prefix{
		"m": {netip.MustParsePrefix("::ffff:10.1.2.3/104"), netip.PrefixFrom(netip.MustParseAddr("fe80::1%eth0"), 64)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := pfx("10.0.0.0/8", "fe80::/64")
	if diff := cmp.Diff(want, s.Prefixes("m"), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("Prefixes mismatch (-want +got):\n%s", diff)
	}
	if !s.Contains("m", netip.MustParseAddr("10.200.0.1")) {
		t.Error("mapped prefix does not match an IPv4 address")
	}
}

func TestNilAndZeroSet(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.1")
	for _, s := range []*cidr.Set{nil, {}} {
		if got := s.Lookup(addr); got != nil {
			t.Errorf("Lookup = %q, want nil", got)
		}
		if s.Contains("x", addr) || s.Len() != 0 || s.Names() != nil || s.Prefixes("x") != nil {
			t.Errorf("%#v is not empty", s)
		}
	}
}

// bruteLookup is the reference: every prefix checked with netip.
func bruteLookup(networks map[string][]netip.Prefix, addr netip.Addr) []string {
	var out []string
	addr = addr.Unmap().WithZone("")
	for name, ps := range networks {
		for _, p := range ps {
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			if p.Contains(addr) {
				out = append(out, name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func mustParseAll(t testing.TB, networks map[string][]string) map[string][]netip.Prefix {
	t.Helper()
	out := make(map[string][]netip.Prefix, len(networks))
	for name, list := range networks {
		for _, s := range list {
			p, err := cidr.ParsePrefix(s)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = append(out[name], p)
		}
	}
	return out
}

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// TestLookupLargeMatchesBruteForce checks a set big enough to be built in
// parallel and spread over many shards, with short prefixes that span
// shards, against the brute-force reference.
func TestLookupLargeMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	networks := benchNetworks(5000, rng)
	networks["wide"] = pfx("8.0.0.0/6", "128.0.0.0/3", "10.0.0.0/7", "100.64.0.0/10", "192.0.0.0/9", "2000::/3", "2001::/15", "::/0")
	networks["wide2"] = pfx("100.0.0.0/8", "192.0.0.0/11", "2001:d00::/24")
	s, err := cidr.NewFromPrefixes(networks)
	if err != nil {
		t.Fatal(err)
	}
	hits, misses := benchAddrs(s, networks, 500, rng)
	addrs := append(hits, misses...)
	for range 500 {
		var b [16]byte
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		addrs = append(addrs, netip.AddrFrom4([4]byte(b[:4])), netip.AddrFrom16(b))
	}
	for _, a := range addrs {
		if got, want := s.Lookup(a), bruteLookup(networks, a); !slices.Equal(got, want) {
			t.Errorf("Lookup(%v) = %q, brute force says %q", a, got, want)
		}
	}
}

// TestLookupNoAllocWithoutTrie checks the answers the Set's root node gives
// without asking a trie: for an address whose shard (first 12 bits of
// IPv4, 16 of IPv6) holds no prefix of at least that length.
func TestLookupNoAllocWithoutTrie(t *testing.T) {
	s, err := cidr.New(map[string][]string{
		"corporate": {"10.0.0.0/8", "2001:db8::/32"},
		"wide":      {"0.0.0.0/1", "2000::/3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want []string
	}{
		{"", nil},
		{"10.200.0.1", []string{"corporate", "wide"}},
		{"::ffff:10.200.0.1", []string{"corporate", "wide"}},
		{"100.64.0.1", []string{"wide"}},
		{"192.0.2.1", nil},
		{"2a00::1", []string{"wide"}},
		{"fe80::1", nil},
	}
	for _, tc := range tests {
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		if diff := cmp.Diff(tc.want, s.Lookup(a)); diff != "" {
			t.Errorf("Lookup(%s) mismatch (-want +got):\n%s", tc.addr, diff)
		}
		if n := testing.AllocsPerRun(100, func() { s.Lookup(a) }); n != 0 {
			t.Errorf("Lookup(%s) made %v allocations, want 0", tc.addr, n)
		}
	}
}
