package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
)

// TestEnvoyShape checks that the tests' request builder produces
// e2e/testdata/envoy-example.json, a CheckRequest as Envoy sends it
// (docs/envoy.md#example-checkrequest), field for field.
func TestEnvoyShape(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "envoy-example.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &authv3.CheckRequest{}
	if err := protojson.Unmarshal(raw, want); err != nil {
		t.Fatal(err)
	}
	// The example is laid out by hand with ", "; Envoy itself appends the
	// peer with a bare "," (docs/envoy.md#client-address), which is what the builder does.
	want.Attributes.Request.Http.Headers["x-forwarded-for"] = "203.0.113.7,192.0.2.5"

	r := envoyreq.Browser("192.0.2.5")
	r.ClientXFF = "203.0.113.7"
	r.Headers = map[string]string{
		"cookie":     "id_token=eyJ...; mfa_rb=v1.abc",
		"user-agent": "Mozilla/5.0",
	}
	r.ContextExtensions = map[string]string{"app_id": "payroll", "mfa_policy": "contextual", "virtual_host": "app"}
	r.Time = time.Date(2026, 11, 23, 16, 51, 44, 30443872, time.UTC)
	got, err := r.Proto()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("builder vs testdata/envoy-example.json (-want +got):\n%s", diff)
	}
}
