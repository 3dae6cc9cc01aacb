package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/stepup-dev/stepup/config"
)

// strictProto decodes JSON into m with protojson, refusing unknown fields.
func strictProto(js []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, m)
}

// istioObject is a Kubernetes custom resource of Istio: its metadata
// decoded strictly, its spec left to the Istio API type.
type istioObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            json.RawMessage   `json:"spec"`
}

func loadIstioObject(t *testing.T, file, kind string, spec proto.Message) istioObject {
	t.Helper()
	js, err := yaml.YAMLToJSON(readFile(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var o istioObject
	if err := decodeStrict(js, &o); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if o.Kind != kind || !strings.HasSuffix(o.APIVersion, ".istio.io/v1") {
		t.Fatalf("%s: apiVersion/kind %s %s, want *.istio.io/v1 %s", file, o.APIVersion, o.Kind, kind)
	}
	if err := strictProto(o.Spec, spec); err != nil {
		t.Fatalf("%s: spec: %v", file, err)
	}
	return o
}

// stepupProvider returns the stepup extension provider of mesh-config.yaml,
// decoded into Istio's MeshConfig.
func stepupProvider(t *testing.T) *meshv1alpha1.MeshConfig_ExtensionProvider {
	t.Helper()
	const file = "deploy/istio/mesh-config.yaml"
	js, err := yaml.YAMLToJSON(readFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := decodeStrict(js, &values); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var mc meshv1alpha1.MeshConfig
	if err := strictProto(values.MeshConfig, &mc); err != nil {
		t.Fatalf("%s: meshConfig: %v", file, err)
	}
	var found *meshv1alpha1.MeshConfig_ExtensionProvider
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == "stepup" {
			found = p
		}
	}
	if found == nil {
		t.Fatalf("%s: no extension provider named stepup", file)
	}
	return found
}

func TestIstioMeshConfig(t *testing.T) {
	p := stepupProvider(t)
	g := p.GetEnvoyExtAuthzGrpc()
	if g == nil {
		t.Fatal("the stepup provider is not envoyExtAuthzGrpc")
	}
	k := loadStepupK8s(t)
	svc := k.objs.services["stepup"]
	if want := svc.Name + "." + svc.Namespace + ".svc.cluster.local"; g.GetService() != want {
		t.Errorf("provider service = %q, want %q", g.GetService(), want)
	}
	if want := listenPort(t, "server.grpc.listen", k.cfg.Server.GRPC.Listen); int32(g.GetPort()) != want {
		t.Errorf("provider port = %d, want stepup's gRPC port %d", g.GetPort(), want)
	}
	if g.GetTimeout() == nil {
		t.Error("provider timeout is not set: Istio's default is 600s")
	} else if d := g.GetTimeout().AsDuration(); d <= k.cfg.Rules.PipelineTimeout.D() || d > 2*time.Second {
		t.Errorf("provider timeout = %s, want more than the rules' %s and at most 2s", d, k.cfg.Rules.PipelineTimeout.D())
	}
	if g.GetFailOpen() {
		t.Error("provider failOpen is true: stepup must fail closed")
	}
}

func TestIstioAuthorizationPolicy(t *testing.T) {
	var ap securityv1beta1.AuthorizationPolicy
	o := loadIstioObject(t, "deploy/istio/authorization-policy.yaml", "AuthorizationPolicy", &ap)
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
		t.Errorf("action = %s, want CUSTOM", ap.GetAction())
	}
	if got, want := ap.GetProvider().GetName(), stepupProvider(t).GetName(); got != want {
		t.Errorf("provider = %q, want the mesh's %q", got, want)
	}
	sel := ap.GetSelector().GetMatchLabels()
	if len(sel) == 0 {
		t.Fatal("the policy selects every workload of its namespace: it must select the gateway only")
	}
	k := loadStepupK8s(t)
	if selects(sel, k.deploy.Spec.Template.Labels) {
		t.Errorf("the policy selects stepup's own pods (%v): stepup's Checks would be checked by stepup", sel)
	}
	if o.Metadata.Namespace == k.deploy.Namespace {
		t.Errorf("the policy lives in stepup's namespace %q", o.Metadata.Namespace)
	}
	if len(ap.GetRules()) == 0 {
		t.Error("the policy has no rules: a CUSTOM policy without rules checks nothing")
	}
	for _, r := range ap.GetRules() {
		for _, to := range r.GetTo() {
			if ps := to.GetOperation().GetNotPaths(); len(ps) > 0 {
				t.Errorf("the policy excludes paths %q: the MFA step needs its requests checked", ps)
			}
		}
	}
}

func TestIstioVirtualService(t *testing.T) {
	var vs networkingv1alpha3.VirtualService
	loadIstioObject(t, "deploy/istio/virtual-service.yaml", "VirtualService", &vs)
	k := loadStepupK8s(t)
	svc := k.objs.services["stepup"]
	stepupHost := svc.Name + "." + svc.Namespace + ".svc.cluster.local"
	httpPort := uint32(listenPort(t, "server.http.listen", k.cfg.Server.HTTP.Listen))
	var stepRoute bool
	for i, r := range vs.GetHttp() {
		toStepup := false
		for _, d := range r.GetRoute() {
			if d.GetDestination().GetHost() == stepupHost {
				toStepup = true
				if d.GetDestination().GetPort().GetNumber() != httpPort {
					t.Errorf("route %d sends to stepup port %d, want its HTTP port %d", i, d.GetDestination().GetPort().GetNumber(), httpPort)
				}
			}
		}
		if !toStepup {
			continue
		}
		if r.GetRewrite() != nil {
			t.Errorf("route %d rewrites the MFA step's path", i)
		}
		ms := r.GetMatch()
		if len(ms) != 1 || ms[0].GetUri().GetPrefix() != k.cfg.MFA.Prefix {
			t.Errorf("route %d to stepup matches %v, want only the prefix %s", i, ms, k.cfg.MFA.Prefix)
			continue
		}
		stepRoute = true
	}
	if !stepRoute {
		t.Errorf("no route sends %s to stepup", k.cfg.MFA.Prefix)
	}
}

// TestIstioStepupConfig checks that stepup accepts its Kubernetes
// configuration with the keys stepup-istio.yaml replaces.
func TestIstioStepupConfig(t *testing.T) {
	k := loadStepupK8s(t)
	var base, patch map[string]any
	if err := yaml.Unmarshal(k.cfgYAML, &base); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/istio/stepup-istio.yaml"), &patch); err != nil {
		t.Fatal(err)
	}
	if len(patch) == 0 {
		t.Fatal("stepup-istio.yaml is empty")
	}
	for key, v := range patch {
		base[key] = v
	}
	merged, err := yaml.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "stepup.yaml")
	if err := os.WriteFile(file, merged, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("stepup refuses the Kubernetes configuration with stepup-istio.yaml: %v", err)
	}
	if cfg.Identity.JWTAuthn.On() {
		t.Error("identity.jwt_authn is on: Istio's checks carry no jwt_authn metadata")
	}
	if !cfg.Identity.JWT.Enabled() {
		t.Error("identity.jwt is off: behind Istio stepup must verify the login token itself")
	}
	if len(cfg.Clients.Hosts) == 0 {
		t.Error("clients.hosts is empty: behind Istio the host names the application")
	}
}
