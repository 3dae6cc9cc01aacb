package cidr_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stepup-dev/stepup/cidr"
)

func TestMatcherReloadKeepsOldSetOnError(t *testing.T) {
	first, err := cidr.New(map[string][]string{"corporate": {"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	m := cidr.NewMatcher(first)
	addr := netip.MustParseAddr("10.1.2.3")

	err = m.Reload(map[string][]string{
		"corporate": {"10.0.0.0/8", "bogus"},
		"bad name":  {"192.0.2.0/24"},
	})
	if err == nil {
		t.Fatal("Reload with bad entries succeeded")
	}
	if !errors.Is(err, cidr.ErrInvalidPrefix) || !errors.Is(err, cidr.ErrInvalidName) {
		t.Errorf("Reload error %v does not wrap both sentinels", err)
	}
	for _, want := range []string{`network "corporate" entry 1`, `"bad name"`, "bogus", "keeping the current set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Reload error %q does not say %q", err, want)
		}
	}
	if m.Load() != first {
		t.Fatal("a failed Reload replaced the current set")
	}

	if err := m.Reload(map[string][]string{"vpn": {"10.0.0.0/8"}}); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if diff := cmp.Diff([]string{"vpn"}, m.Load().Lookup(addr)); diff != "" {
		t.Errorf("Lookup after Reload mismatch (-want +got):\n%s", diff)
	}
	// The old snapshot is untouched by the reload.
	if diff := cmp.Diff([]string{"corporate"}, first.Lookup(addr)); diff != "" {
		t.Errorf("old snapshot changed (-want +got):\n%s", diff)
	}

	m.Store(first)
	if m.Load() != first {
		t.Error("Store did not make the set current")
	}
}

func TestMatcherEmpty(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.1")
	var zero cidr.Matcher
	for name, m := range map[string]*cidr.Matcher{"zero": &zero, "NewMatcher(nil)": cidr.NewMatcher(nil)} {
		s := m.Load()
		if s == nil {
			t.Fatalf("%s: Load returned nil", name)
		}
		if s.Lookup(addr) != nil || s.Len() != 0 {
			t.Errorf("%s: set is not empty", name)
		}
		m.Store(nil)
		if m.Load() == nil {
			t.Errorf("%s: Load returned nil after Store(nil)", name)
		}
	}
}

// TestMatcherConcurrentReload runs readers against a Matcher while it is
// reloaded; run it with -race. Each reader checks that the snapshot it
// loaded answers consistently with itself.
func TestMatcherConcurrentReload(t *testing.T) {
	a := map[string][]string{"alpha": {"10.0.0.0/8", "2001:db8::/32"}}
	b := map[string][]string{"beta": {"10.0.0.0/8", "2001:db8::/32"}, "gamma": {"10.1.0.0/16", "2001:db8::/48"}}
	bad := map[string][]string{"alpha": {"10.0.0.0/8", "10.0.0.0/99"}}
	want := map[string][]string{ // Names()[0] -> Lookup answer
		"alpha": {"alpha"},
		"beta":  {"beta", "gamma"},
	}
	addrs := []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("::ffff:10.1.0.1"), netip.MustParseAddr("2001:db8::1")}

	sa, err := cidr.New(a)
	if err != nil {
		t.Fatal(err)
	}
	m := cidr.NewMatcher(sa)

	const readers, reloads = 4, 300
	done := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan string, readers)
	for range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				s := m.Load()
				names := s.Names()
				for _, addr := range addrs {
					if got := s.Lookup(addr); !slices.Equal(got, want[names[0]]) {
						errc <- "snapshot " + strings.Join(names, ",") + " answered " + strings.Join(got, ",")
						return
					}
				}
			}
		})
	}
	for i := range reloads {
		next := a
		if i%2 == 0 {
			next = b
		}
		if err := m.Reload(next); err != nil {
			t.Errorf("Reload: %v", err)
		}
		if err := m.Reload(bad); err == nil {
			t.Error("Reload(bad) succeeded")
		}
	}
	close(done)
	wg.Wait()
	close(errc)
	for msg := range errc {
		t.Error(msg)
	}
	if got := m.Load().Names(); !slices.Equal(got, []string{"alpha"}) {
		t.Errorf("final set has names %q, want [alpha]", got)
	}
}
