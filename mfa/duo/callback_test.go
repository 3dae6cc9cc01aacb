package duo

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

var callbackCases = []struct {
	name    string
	query   string
	want    Callback
	wantErr error
}{
	{name: "ok", query: "state=" + testState + "&duo_code=abc123", want: Callback{State: testState, Code: "abc123"}},
	{name: "other params ignored", query: "keep=1&state=" + testState + "&duo_code=abc123", want: Callback{State: testState, Code: "abc123"}},
	{name: "no state", query: "duo_code=abc123", wantErr: ErrInvalidInput},
	{name: "short state", query: "state=short&duo_code=abc123", wantErr: ErrInvalidInput},
	{name: "two states", query: "state=" + testState + "&state=" + testState + "&duo_code=abc123", wantErr: ErrInvalidInput},
	{name: "no code", query: "state=" + testState, wantErr: ErrInvalidInput},
	{name: "legacy code parameter", query: "state=" + testState + "&code=abc123", wantErr: ErrInvalidInput},
	{name: "two codes", query: "state=" + testState + "&duo_code=a&duo_code=b", wantErr: ErrInvalidInput},
	{name: "empty code", query: "state=" + testState + "&duo_code=", wantErr: ErrInvalidInput},
	{name: "code with newline", query: "state=" + testState + "&duo_code=a%0Ab", wantErr: ErrInvalidInput},
	{name: "code too long", query: "state=" + testState + "&duo_code=" + strings.Repeat("c", 4097), wantErr: ErrInvalidInput},
	{
		name:    "duo error keeps the state",
		query:   "state=" + testState + "&error=access_denied&error_description=User+cancelled%0Aforged+line",
		want:    Callback{State: testState},
		wantErr: ErrRejected,
	},
	{name: "duo error without state", query: "error=server_error", wantErr: ErrRejected},
}

func TestParseCallback(t *testing.T) {
	for _, tt := range callbackCases {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseCallback(q)
			if got != tt.want {
				t.Errorf("ParseCallback = %+v, want %+v", got, tt.want)
			}
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("ParseCallback error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error %q has a line break from the query", err)
			}
		})
	}
}

func FuzzParseCallback(f *testing.F) {
	for _, tt := range callbackCases {
		f.Add(tt.query)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // keeps what parses
		cb, err := ParseCallback(q)
		if strings.ContainsAny(errString(err), "\n\r") {
			t.Fatalf("error %q has a line break", err)
		}
		if cb.State != "" && checkState(cb.State) != nil {
			t.Fatalf("returned an invalid state %q", cb.State)
		}
		switch {
		case err == nil:
			if checkCode(cb.Code) != nil || cb.State == "" {
				t.Fatalf("accepted %+v", cb)
			}
		case errors.Is(err, ErrRejected):
			if cb.Code != "" {
				t.Fatalf("rejected callback returned a code")
			}
		case errors.Is(err, ErrInvalidInput):
			if cb != (Callback{}) {
				t.Fatalf("invalid callback returned %+v", cb)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
