package cidr_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/stepup-dev/stepup/cidr"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      []string
		wantLines []int // lines reported as bad; nil means no error
	}{
		{
			name: "comments blanks and spaces",
			in: "# corporate ranges\n" +
				"10.0.0.0/8\n" +
				"\n" +
				"   192.168.1.0/24   # office\n" +
				"\t2001:db8::/32\t\n" +
				"192.0.2.7\n" +
				"   # indented comment\n" +
				"::ffff:172.16.0.0/108",
			want: []string{"10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32", "192.0.2.7", "::ffff:172.16.0.0/108"},
		},
		{
			name: "crlf and bom",
			in:   "\uFEFF10.0.0.0/8\r\n# c\r\n2001:db8::/32\r\n",
			want: []string{"10.0.0.0/8", "2001:db8::/32"},
		},
		{name: "empty", in: "", want: nil},
		{name: "only comments", in: "# nothing\n\n#\n", want: nil},
		{
			name:      "bad lines all reported",
			in:        "10.0.0.0/8\nbogus\n\n10.0.0.300/8\n# fine\n2001:db8::/129 # too long\nfe80::1%eth0\n",
			wantLines: []int{2, 4, 6, 7},
		},
		{
			name:      "two prefixes on one line",
			in:        "10.0.0.0/8 192.168.0.0/16\n",
			wantLines: []int{1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cidr.ParseList(strings.NewReader(tc.in))
			if tc.wantLines == nil {
				if err != nil {
					t.Fatalf("ParseList: %v", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("ParseList mismatch (-want +got):\n%s", diff)
				}
				// What ParseList returns, New accepts.
				if _, err := cidr.New(map[string][]string{"list": got}); err != nil {
					t.Errorf("New rejects ParseList's output: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseList = %q, want error", got)
			}
			if got != nil {
				t.Errorf("ParseList returned %q along with an error", got)
			}
			if !errors.Is(err, cidr.ErrInvalidPrefix) {
				t.Errorf("error %v does not wrap ErrInvalidPrefix", err)
			}
			var lines []int
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var n int
				if _, scanErr := fmt.Sscanf(e.Error(), "line %d:", &n); scanErr != nil {
					t.Errorf("error %q does not start with a line number", e)
				}
				lines = append(lines, n)
			}
			if diff := cmp.Diff(tc.wantLines, lines); diff != "" {
				t.Errorf("bad lines mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseListManyErrors(t *testing.T) {
	in := strings.Repeat("bogus\n", 250)
	_, err := cidr.ParseList(strings.NewReader(in))
	if err == nil {
		t.Fatal("ParseList accepted garbage")
	}
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	if len(errs) != 101 {
		t.Errorf("got %d joined errors, want 100 lines and a summary", len(errs))
	}
	if !strings.Contains(err.Error(), "150 more bad lines") {
		t.Errorf("error does not count the lines left out: %v", errs[len(errs)-1])
	}
}

func TestParseListReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader("10.0.0.0/8\n"), iotest.ErrReader(boom))
	_, err := cidr.ParseList(r)
	if !errors.Is(err, boom) {
		t.Fatalf("ParseList error = %v, want %v", err, boom)
	}
	if !strings.Contains(err.Error(), "after line 1") {
		t.Errorf("error %q does not say where reading stopped", err)
	}

	long := strings.Repeat("1", 70_000)
	if _, err := cidr.ParseList(strings.NewReader("10.0.0.0/8\n" + long)); err == nil {
		t.Error("ParseList accepted a 70 kB line")
	}
}
