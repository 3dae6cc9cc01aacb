package rules

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestIPAddr checks the ipaddr.js shim against ipaddr.js 1.9's documented
// behaviour (README and lib/ipaddr.js): results and error messages.
func TestIPAddr(t *testing.T) {
	for _, tc := range []struct {
		expr    string
		want    any
		wantErr string // "Name: message" of the exception
	}{
		// Parsing and printing.
		{expr: "ipaddr.parse('192.168.1.1').kind()", want: "ipv4"},
		{expr: "ipaddr.parse('192.168.1.1').toString()", want: "192.168.1.1"},
		{expr: "ipaddr.parse('192.168.1.1').octets", want: []any{int64(192), int64(168), int64(1), int64(1)}},
		{expr: "ipaddr.parse('0xc0.168.1.1').toString()", want: "192.168.1.1"},
		{expr: "ipaddr.parse('0300.0250.01.01').toString()", want: "192.168.1.1"},
		{expr: "ipaddr.parse('3232235777').toString()", want: "192.168.1.1"},
		{expr: "ipaddr.parse('0xc0a80101').toString()", want: "192.168.1.1"},
		{expr: "ipaddr.parse('::1').kind()", want: "ipv6"},
		{expr: "ipaddr.parse('::1').toString()", want: "::1"},
		{expr: "ipaddr.parse('2001:db8:0:0:0:0:0:1').toString()", want: "2001:db8::1"},
		{expr: "ipaddr.parse('2001:db8::1').toNormalizedString()", want: "2001:db8:0:0:0:0:0:1"},
		{expr: "ipaddr.parse('1:0:0:1:0:0:0:1').toString()", want: "1:0:0:1::1"},
		{expr: "ipaddr.parse('1:0:2:3:4:5:6:7').toString()", want: "1:0:2:3:4:5:6:7"},
		{expr: "ipaddr.parse('2001:db8::1').parts", want: []any{int64(0x2001), int64(0xdb8), int64(0), int64(0), int64(0), int64(0), int64(0), int64(1)}},
		{expr: "ipaddr.parse('fe80::1%eth0').toString()", want: "fe80::1%eth0"},
		{expr: "ipaddr.parse('fe80::1%eth0').zoneId", want: "eth0"},
		{expr: "ipaddr.IPv6.parse('::ffff:192.168.1.10').toFixedLengthString()", want: "0000:0000:0000:0000:0000:ffff:c0a8:010a"},
		{expr: "ipaddr.parse('foo')", wantErr: "Error: ipaddr: the address has neither IPv6 nor IPv4 format"},
		{expr: "ipaddr.parse(undefined)", wantErr: "Error: ipaddr: the address has neither IPv6 nor IPv4 format"},
		{expr: "ipaddr.parse('1.2.3.256')", wantErr: "Error: ipaddr: the address has neither IPv6 nor IPv4 format"},
		{expr: "ipaddr.IPv4.parse('1.2.3.256')", wantErr: "Error: ipaddr: ipv4 octet should fit in 8 bits"},
		{expr: "ipaddr.IPv4.parse('1.2.3')", wantErr: "Error: ipaddr: string is not formatted like ip address"},
		{expr: "ipaddr.IPv4.parse('4294967296')", wantErr: "Error: ipaddr: address outside defined range"},
		{expr: "ipaddr.IPv6.parse('1.2.3.4')", wantErr: "Error: ipaddr: string is not formatted like ip address"},

		// Validation.
		{expr: "ipaddr.isValid('1.2.3.4')", want: true},
		{expr: "ipaddr.isValid('::')", want: true},
		{expr: "ipaddr.isValid('foo')", want: false},
		{expr: "ipaddr.isValid('1.2.3.4 ')", want: false},
		{expr: "ipaddr.isValid('1.2.3.4\\n')", want: false},
		{expr: "ipaddr.isValid(42)", want: false},
		{expr: "ipaddr.IPv4.isValid('1.2.3.4')", want: true},
		{expr: "ipaddr.IPv4.isValid('::1')", want: false},
		{expr: "ipaddr.IPv4.isValid('1.2.3.256')", want: false},
		{expr: "ipaddr.IPv6.isValid('::1')", want: true},
		{expr: "ipaddr.IPv6.isValid('1.2.3.4')", want: false},
		{expr: "ipaddr.IPv6.isValid('1::2::3')", want: false},
		{expr: "ipaddr.IPv6.isValid('fe80::1%eth0')", want: true},
		{expr: "ipaddr.IPv4.isValidFourPartDecimal('192.168.1.1')", want: true},
		{expr: "ipaddr.IPv4.isValidFourPartDecimal('0xc0.168.1.1')", want: false},
		{expr: "ipaddr.IPv4.isValidFourPartDecimal('3232235777')", want: false},

		// CIDR parsing and matching.
		{expr: "ipaddr.parseCIDR('192.168.1.134/26')[1]", want: int64(26)},
		{expr: "ipaddr.parseCIDR('192.168.1.134/26')[0].toString()", want: "192.168.1.134"},
		{expr: "ipaddr.parseCIDR('192.168.1.134/26').toString()", want: "192.168.1.134/26"},
		{expr: "ipaddr.parseCIDR('2001:db8::/32')[0].kind()", want: "ipv6"},
		{expr: "ipaddr.parseCIDR('1.2.3.4/33')", wantErr: "Error: ipaddr: the address has neither IPv6 nor IPv4 CIDR format"},
		{expr: "ipaddr.parseCIDR('1.2.3.4')", wantErr: "Error: ipaddr: the address has neither IPv6 nor IPv4 CIDR format"},
		{expr: "ipaddr.IPv4.parseCIDR('1.2.3.4/33')", wantErr: "Error: ipaddr: string is not formatted like an IPv4 CIDR range"},
		{expr: "ipaddr.IPv4.parseCIDR('1.2.3/8')", wantErr: "Error: ipaddr: string is not formatted like ip address"},
		{expr: "ipaddr.IPv6.parseCIDR('::/129')", wantErr: "Error: ipaddr: string is not formatted like an IPv6 CIDR range"},
		{expr: "ipaddr.parse('192.168.1.140').match(ipaddr.parseCIDR('192.168.1.134/26'))", want: true},
		{expr: "ipaddr.parse('192.168.1.127').match(ipaddr.parseCIDR('192.168.1.134/26'))", want: false},
		{expr: "ipaddr.parse('10.1.2.3').match(ipaddr.parse('10.0.0.0'), 8)", want: true},
		{expr: "ipaddr.parse('11.1.2.3').match(ipaddr.parse('10.0.0.0'), 8)", want: false},
		{expr: "ipaddr.parse('1.2.3.4').match(ipaddr.parse('0.0.0.0'), 0)", want: true},
		{expr: "ipaddr.parse('2001:db8::5').match(ipaddr.parseCIDR('2001:db8::/32'))", want: true},
		{expr: "ipaddr.parse('2001:db9::5').match(ipaddr.parseCIDR('2001:db8::/32'))", want: false},
		{expr: "ipaddr.parse('1.2.3.4').match(ipaddr.parseCIDR('::/0'))", wantErr: "Error: ipaddr: cannot match ipv4 address with non-ipv4 one"},
		{expr: "ipaddr.parse('::1').match(ipaddr.parseCIDR('1.0.0.0/8'))", wantErr: "Error: ipaddr: cannot match ipv6 address with non-ipv6 one"},
		{expr: "ipaddr.parse('1.2.3.4').match(undefined)", wantErr: "TypeError"},
		{expr: "ipaddr.parse('1.2.3.4').match(ipaddr.parse('1.2.3.4'), Infinity)", want: true},

		// Ranges and IPv4-mapped addresses.
		{expr: "ipaddr.parse('127.0.0.1').range()", want: "loopback"},
		{expr: "ipaddr.parse('10.1.1.1').range()", want: "private"},
		{expr: "ipaddr.parse('172.20.1.1').range()", want: "private"},
		{expr: "ipaddr.parse('100.64.0.1').range()", want: "carrierGradeNat"},
		{expr: "ipaddr.parse('203.0.113.7').range()", want: "reserved"},
		{expr: "ipaddr.parse('8.8.8.8').range()", want: "unicast"},
		{expr: "ipaddr.parse('255.255.255.255').range()", want: "broadcast"},
		{expr: "ipaddr.parse('::1').range()", want: "loopback"},
		{expr: "ipaddr.parse('fe80::1').range()", want: "linkLocal"},
		{expr: "ipaddr.parse('fd00::1').range()", want: "uniqueLocal"},
		{expr: "ipaddr.parse('::ffff:1.2.3.4').range()", want: "ipv4Mapped"},
		{expr: "ipaddr.parse('2001:db8::1').range()", want: "reserved"},
		{expr: "ipaddr.parse('2a00::1').range()", want: "unicast"},
		{expr: "ipaddr.parse('::ffff:192.168.1.1').isIPv4MappedAddress()", want: true},
		{expr: "ipaddr.parse('::ffff:192.168.1.1').toIPv4Address().toString()", want: "192.168.1.1"},
		{expr: "ipaddr.parse('::1').toIPv4Address()", wantErr: "Error: ipaddr: trying to convert a generic ipv6 address to ipv4"},
		{expr: "ipaddr.process('::ffff:192.168.1.1').kind()", want: "ipv4"},
		{expr: "ipaddr.process('::ffff:192.168.1.1').toString()", want: "192.168.1.1"},
		{expr: "ipaddr.process('::1').kind()", want: "ipv6"},
		{expr: "ipaddr.process('10.0.0.1').toString()", want: "10.0.0.1"},
		{expr: "ipaddr.parse('192.168.1.1').toIPv4MappedAddress().toString()", want: "::ffff:c0a8:101"},

		// subnetMatch.
		{expr: "ipaddr.subnetMatch(ipaddr.parse('10.1.2.3'), {corp: [ipaddr.parseCIDR('10.0.0.0/8')], dmz: ipaddr.parseCIDR('192.168.0.0/16')}, 'external')", want: "corp"},
		{expr: "ipaddr.subnetMatch(ipaddr.parse('192.168.5.5'), {corp: [ipaddr.parseCIDR('10.0.0.0/8')], dmz: ipaddr.parseCIDR('192.168.0.0/16')}, 'external')", want: "dmz"},
		{expr: "ipaddr.subnetMatch(ipaddr.parse('8.8.8.8'), {corp: [ipaddr.parseCIDR('10.0.0.0/8')]}, 'external')", want: "external"},
		{expr: "ipaddr.subnetMatch(ipaddr.parse('8.8.8.8'), {corp: [ipaddr.parseCIDR('10.0.0.0/8')]})", want: "unicast"},
		{expr: "ipaddr.subnetMatch(ipaddr.parse('::1'), {corp: [ipaddr.parseCIDR('10.0.0.0/8'), ipaddr.parseCIDR('::1/128')]}, false)", want: "corp"},

		// Constructors and conversions.
		{expr: "new ipaddr.IPv4([10, 0, 0, 1]).toString()", want: "10.0.0.1"},
		{expr: "new ipaddr.IPv4([10, 0, 0, 1]) instanceof ipaddr.IPv4 && ipaddr.parse('1.1.1.1') instanceof ipaddr.IPv4", want: true},
		{expr: "ipaddr.parse('::1') instanceof ipaddr.IPv6", want: true},
		{expr: "new ipaddr.IPv4([300, 0, 0, 1])", wantErr: "Error: ipaddr: ipv4 octet should fit in 8 bits"},
		{expr: "new ipaddr.IPv4([1, 2, 3])", wantErr: "Error: ipaddr: ipv4 octet count should be 4"},
		{expr: "new ipaddr.IPv6([0, 0, 0, 0, 0, 0, 0, 1]).toString()", want: "::1"},
		{expr: "new ipaddr.IPv6([1, 2, 3])", wantErr: "Error: ipaddr: ipv6 part count should be 8 or 16"},
		{expr: "ipaddr.fromByteArray([127, 0, 0, 1]).toString()", want: "127.0.0.1"},
		{expr: "ipaddr.fromByteArray([0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1]).toString()", want: "::1"},
		{expr: "ipaddr.fromByteArray([1, 2])", wantErr: "Error: ipaddr: the binary input is neither an IPv6 nor IPv4 address"},
		{expr: "ipaddr.parse('1.2.3.4').toByteArray()", want: []any{int64(1), int64(2), int64(3), int64(4)}},
		{expr: "ipaddr.parse('::102').toByteArray().slice(14)", want: []any{int64(1), int64(2)}},
		{expr: "ipaddr.IPv4.subnetMaskFromPrefixLength(24).toString()", want: "255.255.255.0"},
		{expr: "ipaddr.IPv4.subnetMaskFromPrefixLength(20).toString()", want: "255.255.240.0"},
		{expr: "ipaddr.parse('255.255.255.0').prefixLengthFromSubnetMask()", want: int64(24)},
		{expr: "ipaddr.parse('255.255.240.0').prefixLengthFromSubnetMask()", want: int64(20)},
		{expr: "ipaddr.parse('255.0.255.0').prefixLengthFromSubnetMask()", want: nil},
		{expr: "ipaddr.parse('ffff:ffff::').prefixLengthFromSubnetMask()", want: int64(32)},
		{expr: "ipaddr.IPv4.broadcastAddressFromCIDR('172.0.0.1/24').toString()", want: "172.0.0.255"},
		{expr: "ipaddr.IPv4.networkAddressFromCIDR('172.0.0.1/24').toString()", want: "172.0.0.0"},
		{expr: "ipaddr.IPv4.networkAddressFromCIDR('nope')", wantErr: "Error: ipaddr: the address does not have IPv4 CIDR format"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := jsEval(t, Options{}, "var ipaddr = require('ipaddr.js');\nreturn "+tc.expr+";")
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want error %q", got, tc.wantErr)
				}
				if s := err.Name + ": " + err.Message; s != tc.wantErr && err.Name != tc.wantErr {
					t.Fatalf("error %q, want %q", s, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestIPAddrTamperedObjects: scripts may change an address's fields; the
// Go side must answer or throw a JS error, never fault.
func TestIPAddrTamperedObjects(t *testing.T) {
	for _, expr := range []string{
		"var a = ipaddr.parse('1.2.3.4'); a.octets = []; return a.toIPv4MappedAddress().toString();",
		"var a = ipaddr.parse('1.2.3.4'); a.octets = [1, 2]; return a.match(ipaddr.parseCIDR('1.0.0.0/8'));",
		"var a = ipaddr.parse('::1'); a.parts = [1]; return [a.toString(), a.range(), a.isIPv4MappedAddress(), a.toByteArray()];",
		"var a = ipaddr.parse('::ffff:1.2.3.4'); a.parts.length = 3; return a.toIPv4Address().toString();",
		"var a = ipaddr.parse('1.2.3.4'); a.octets = 'abcd'; return [a.toString(), a.range()];",
		"var a = ipaddr.parse('1.2.3.4'); a.octets = new Array(1e6); return a.match(a, 32);",
		"var a = ipaddr.parse('1.2.3.4'); a.kind = function () { return 'ipv6'; }; return a.match(ipaddr.parseCIDR('::/0'));",
		"var fake = {kind: function () { return 'ipv4'; }, octets: [1, 2, 3, 4]}; return ipaddr.parse('1.2.3.4').match(fake, 32);",
		"return ipaddr.IPv4.prototype.toString.call({});",
		"return ipaddr.parse('1.2.3.4').match.call(42, 1);",
		"return ipaddr.subnetMatch(ipaddr.parse('1.2.3.4'), {a: [[]], b: [null], c: 'x', d: [[ipaddr.parse('1.2.3.4')]]});",
		"return new ipaddr.IPv6(new Array(16).fill(255)).toString();",
		"return ipaddr.IPv4.subnetMaskFromPrefixLength(NaN).toString();",
		"return ipaddr.IPv6.broadcastAddressFromCIDR('2001:db8::/32').toString();",
	} {
		_, err := jsEval(t, Options{}, "var ipaddr = require('ipaddr.js');\n"+expr)
		if err != nil && err.Kind != KindException {
			t.Errorf("%s: %v", expr, err)
		}
	}
}
