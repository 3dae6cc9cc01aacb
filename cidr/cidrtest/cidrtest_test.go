package cidrtest

import "testing"

func TestRandomPrefixes(t *testing.T) {
	a, b := RandomPrefixes(1000), RandomPrefixes(1000)
	if len(a) != 1000 {
		t.Fatalf("%d prefixes, want 1000", len(a))
	}
	seen := map[string]bool{}
	v6 := 0
	for i, p := range a {
		if p != b[i] {
			t.Fatalf("prefix %d differs between calls: %v, %v", i, p, b[i])
		}
		if !p.IsValid() || p != p.Masked() || seen[p.String()] {
			t.Fatalf("prefix %d %v: invalid, unmasked or repeated", i, p)
		}
		seen[p.String()] = true
		if p.Addr().Is6() {
			v6++
		}
	}
	if v6 == 0 || v6 > 300 {
		t.Errorf("%d IPv6 prefixes of 1000, want about 150", v6)
	}
}
