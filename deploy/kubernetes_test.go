package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/session"
)

// k8sObjects are the decoded objects of deploy/kubernetes, by kind and
// name.
type k8sObjects struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pdbs        map[string]*policyv1.PodDisruptionBudget
	pvcs        map[string]*corev1.PersistentVolumeClaim
	namespaces  map[string]*corev1.Namespace
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitYAML returns the non-empty documents of a multi-document YAML file.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(b), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decodeStrict decodes JSON into out, refusing unknown fields.
func decodeStrict(js []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// loadK8s decodes every document of the given files strictly into the
// Kubernetes API type its apiVersion and kind name.
func loadK8s(t *testing.T, files ...string) *k8sObjects {
	t.Helper()
	o := &k8sObjects{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		pvcs:        map[string]*corev1.PersistentVolumeClaim{},
		namespaces:  map[string]*corev1.Namespace{},
	}
	for _, f := range files {
		for i, doc := range splitYAML(readFile(t, f)) {
			where := fmt.Sprintf("%s document %d", f, i+1)
			js, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(js, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var put func() error
			decode := func(obj interface{ GetName() string }, add func(string)) error {
				if err := decodeStrict(js, obj); err != nil {
					return err
				}
				if obj.GetName() == "" {
					return fmt.Errorf("no metadata.name")
				}
				add(obj.GetName())
				return nil
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				v := &appsv1.Deployment{}
				put = func() error { return decode(v, func(n string) { add(t, o.deployments, n, v, where) }) }
			case "v1 Service":
				v := &corev1.Service{}
				put = func() error { return decode(v, func(n string) { add(t, o.services, n, v, where) }) }
			case "v1 ConfigMap":
				v := &corev1.ConfigMap{}
				put = func() error { return decode(v, func(n string) { add(t, o.configMaps, n, v, where) }) }
			case "v1 Secret":
				v := &corev1.Secret{}
				put = func() error { return decode(v, func(n string) { add(t, o.secrets, n, v, where) }) }
			case "policy/v1 PodDisruptionBudget":
				v := &policyv1.PodDisruptionBudget{}
				put = func() error { return decode(v, func(n string) { add(t, o.pdbs, n, v, where) }) }
			case "v1 PersistentVolumeClaim":
				v := &corev1.PersistentVolumeClaim{}
				put = func() error { return decode(v, func(n string) { add(t, o.pvcs, n, v, where) }) }
			case "v1 Namespace":
				v := &corev1.Namespace{}
				put = func() error { return decode(v, func(n string) { add(t, o.namespaces, n, v, where) }) }
			default:
				t.Fatalf("%s: unexpected apiVersion/kind %q %q", where, tm.APIVersion, tm.Kind)
			}
			if err := put(); err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return o
}

// add files v under name, refusing a second object of the same kind and
// name.
func add[V any](t *testing.T, m map[string]V, name string, v V, where string) {
	t.Helper()
	if _, dup := m[name]; dup {
		t.Fatalf("%s: a second object named %q of the same kind", where, name)
	}
	m[name] = v
}

// k8sFiles are the manifests `kubectl apply -f deploy/kubernetes/` applies,
// plus the example Secret.
var k8sFiles = []string{
	"deploy/kubernetes/namespace.yaml",
	"deploy/kubernetes/configmap.yaml",
	"deploy/kubernetes/deployment.yaml",
	"deploy/kubernetes/service.yaml",
	"deploy/kubernetes/poddisruptionbudget.yaml",
	"deploy/kubernetes/redis.yaml",
	"deploy/kubernetes/example-secret/stepup-secrets.yaml",
}

// TestKubernetesFilesListed keeps k8sFiles in step with the directory.
func TestKubernetesFilesListed(t *testing.T) {
	var found []string
	err := filepath.WalkDir(filepath.Join(root, "deploy/kubernetes"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			rel, _ := filepath.Rel(root, p)
			found = append(found, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if !slices.Contains(k8sFiles, f) {
			t.Errorf("%s is not checked: add it to k8sFiles", f)
		}
	}
}

// stepupK8s is what the Kubernetes manifests say about stepup.
type stepupK8s struct {
	objs      *k8sObjects
	deploy    *appsv1.Deployment
	container *corev1.Container
	cfg       *config.Config
	cfgYAML   []byte
}

// loadStepupK8s decodes the manifests and loads the ConfigMap's stepup.yaml
// with stepup's own configuration loader, the environment set from the
// example Secret as the Deployment maps it.
func loadStepupK8s(t *testing.T) *stepupK8s {
	t.Helper()
	o := loadK8s(t, k8sFiles...)
	s := &stepupK8s{objs: o}
	s.deploy = o.deployments["stepup"]
	if s.deploy == nil {
		t.Fatal("no Deployment named stepup")
	}
	for i := range s.deploy.Spec.Template.Spec.Containers {
		if c := &s.deploy.Spec.Template.Spec.Containers[i]; c.Name == "stepup" {
			s.container = c
		}
	}
	if s.container == nil {
		t.Fatal("the stepup Deployment has no container named stepup")
	}
	// The environment the container gets from Secrets.
	for _, e := range s.container.Env {
		ref := e.ValueFrom
		if ref == nil || ref.SecretKeyRef == nil {
			if e.Value != "" {
				t.Setenv(e.Name, e.Value)
			}
			continue
		}
		sec := o.secrets[ref.SecretKeyRef.Name]
		if sec == nil {
			t.Fatalf("env %s: no Secret %q", e.Name, ref.SecretKeyRef.Name)
		}
		v, ok := sec.StringData[ref.SecretKeyRef.Key]
		if !ok {
			t.Fatalf("env %s: Secret %q has no key %q", e.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
		}
		t.Setenv(e.Name, v)
	}
	// The configuration file, where the container reads it.
	cfgPath := flagValue(s.container.Args, "--config")
	if cfgPath == "" {
		t.Fatalf("the stepup container's args %q name no --config", s.container.Args)
	}
	cm := configMapMountedAt(t, s.deploy, s.container, filepath.Dir(cfgPath))
	s.cfgYAML = []byte(cm.Data[filepath.Base(cfgPath)])
	if len(s.cfgYAML) == 0 {
		t.Fatalf("ConfigMap %s has no key %s (the --config file)", cm.Name, filepath.Base(cfgPath))
	}
	file := filepath.Join(t.TempDir(), "stepup.yaml")
	if err := os.WriteFile(file, s.cfgYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("stepup refuses the ConfigMap's %s: %v", filepath.Base(cfgPath), err)
	}
	s.cfg = cfg
	return s
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// configMapMountedAt returns the ConfigMap the container mounts at dir.
func configMapMountedAt(t *testing.T, d *appsv1.Deployment, c *corev1.Container, dir string) *corev1.ConfigMap {
	t.Helper()
	m := mountAt(c, dir)
	if m == nil {
		t.Fatalf("container %s mounts nothing at %s (where --config points)", c.Name, dir)
	}
	v := volumeNamed(d, m.Name)
	if v == nil || v.ConfigMap == nil {
		t.Fatalf("volume %q mounted at %s is not a ConfigMap", m.Name, dir)
	}
	return mustConfigMap(t, v.ConfigMap.Name)
}

var allConfigMaps map[string]*corev1.ConfigMap

func mustConfigMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	if allConfigMaps == nil {
		allConfigMaps = loadK8s(t, k8sFiles...).configMaps
	}
	cm := allConfigMaps[name]
	if cm == nil {
		t.Fatalf("no ConfigMap %q", name)
	}
	return cm
}

func mountAt(c *corev1.Container, dir string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if filepath.Clean(c.VolumeMounts[i].MountPath) == filepath.Clean(dir) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volumeNamed(d *appsv1.Deployment, name string) *corev1.Volume {
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func containerPort(t *testing.T, c *corev1.Container, port intstr.IntOrString) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %s", c.Name, port.String())
	return 0
}

func listenPort(t *testing.T, what, hostport string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%s %q: %v", what, hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s %q: %v", what, hostport, err)
	}
	return int32(n)
}

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesStepup(t *testing.T) {
	s := loadStepupK8s(t)
	d, c, cfg := s.deploy, s.container, s.cfg
	pod := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("stepup replicas = %v, want 2", d.Spec.Replicas)
	}
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}

	// Listeners: all interfaces, on the container's declared ports.
	grpcPort := listenPort(t, "server.grpc.listen", cfg.Server.GRPC.Listen)
	httpPort := listenPort(t, "server.http.listen", cfg.Server.HTTP.Listen)
	for _, l := range []string{cfg.Server.GRPC.Listen, cfg.Server.HTTP.Listen} {
		if h, _, _ := net.SplitHostPort(l); h != "0.0.0.0" && h != "" && h != "::" {
			t.Errorf("stepup listens on %s: in a pod it must listen on all interfaces", l)
		}
	}
	if got := containerPort(t, c, intstr.FromString("grpc")); got != grpcPort {
		t.Errorf("container port grpc = %d, stepup's gRPC listens on %d", got, grpcPort)
	}
	if got := containerPort(t, c, intstr.FromString("http")); got != httpPort {
		t.Errorf("container port http = %d, stepup's HTTP listens on %d", got, httpPort)
	}

	// Probes: stepup's HTTP paths (servedPaths is checked against a running
	// stepup in TestServedPaths) on its HTTP port.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe of %s", p.name, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s path = %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if !slices.Contains(servedPaths, p.probe.HTTPGet.Path) {
			t.Errorf("%s path %q is not served by stepup", p.name, p.probe.HTTPGet.Path)
		}
		if got := containerPort(t, c, p.probe.HTTPGet.Port); got != httpPort {
			t.Errorf("%s port %s = %d, want stepup's HTTP port %d", p.name, p.probe.HTTPGet.Port.String(), got, httpPort)
		}
	}

	// Security.
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	} else if psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod securityContext.runAsUser must be a non-zero numeric user (the image's 65532)")
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Error("the stepup container has no securityContext")
	default:
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("capabilities = %+v, want drop ALL and add none", sc.Capabilities)
		}
	}
	// With a read-only root, data_dir must be a writable volume.
	if m := mountAt(c, cfg.DataDir); m == nil || m.ReadOnly {
		t.Errorf("data_dir %s is not a writable volume mount (the root filesystem is read-only)", cfg.DataDir)
	}
	if q := c.Resources.Requests; q.Cpu().IsZero() || q.Memory().IsZero() {
		t.Errorf("resources.requests = %v, want cpu and memory", q)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("resources.limits.memory is not set (stepup's automatic memory limit follows it)")
	}

	// Draining: the pod is given the time stepup takes to stop.
	need := cfg.Server.DrainDelay.D() + cfg.Server.ShutdownTimeout.D()
	if cfg.Server.DrainDelay.D() == 0 {
		t.Error("server.drain_delay is 0: pods stop answering before Envoy and the endpoints notice")
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil {
		t.Errorf("terminationGracePeriodSeconds is not set, want at least drain_delay + shutdown_timeout = %s", need)
	} else if time.Duration(*g)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds = %d, want at least drain_delay + shutdown_timeout = %s", *g, need)
	}

	// Sessions shared between replicas.
	if cfg.Sessions.Store.Type != "redis" {
		t.Errorf("sessions.store.type = %q: replicas must share sessions (redis)", cfg.Sessions.Store.Type)
	}
	if len(cfg.Sessions.Keys) == 0 {
		t.Error("sessions.keys is empty: each replica would generate its own keys")
	}
	for _, list := range [][]config.SigningKey{cfg.Sessions.Keys, cfg.Sessions.EncryptionKeys} {
		for _, k := range list {
			v, err := k.Secret.Resolve(cfg)
			if err != nil {
				t.Errorf("key %s: %v", k.ID, err)
				continue
			}
			if _, err := session.ParseKeys(k.ID + ":" + v); err != nil {
				t.Errorf("the example secret of key %s is not a usable key: %v", k.ID, err)
			}
		}
	}

	// Services, disruption budget.
	svc := s.objs.services["stepup"]
	if svc == nil {
		t.Fatal("no Service named stepup")
	}
	if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service stepup's selector %v does not select stepup's pods", svc.Spec.Selector)
	}
	want := map[string]struct {
		port  int32
		proto string
	}{"grpc": {grpcPort, "grpc"}, "http": {httpPort, "http"}}
	for _, p := range svc.Spec.Ports {
		w, ok := want[p.Name]
		if !ok {
			t.Errorf("Service stepup has an unexpected port %q", p.Name)
			continue
		}
		delete(want, p.Name)
		if got := containerPort(t, c, p.TargetPort); got != w.port {
			t.Errorf("Service port %s targets %d, stepup listens on %d", p.Name, got, w.port)
		}
		if p.AppProtocol == nil || *p.AppProtocol != w.proto {
			t.Errorf("Service port %s appProtocol = %v, want %s", p.Name, p.AppProtocol, w.proto)
		}
	}
	for name := range want {
		t.Errorf("Service stepup has no port %s", name)
	}
	pdb := s.objs.pdbs["stepup"]
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget named stepup")
	}
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("the PodDisruptionBudget does not select stepup's pods")
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Errorf("PodDisruptionBudget minAvailable = %v, want at least 1", pdb.Spec.MinAvailable)
	}

	// Every object in stepup's namespace.
	for _, ns := range namespacesOf(s.objs) {
		if ns != "stepup" {
			t.Errorf("an object is in namespace %q, want stepup", ns)
		}
	}
}

func namespacesOf(o *k8sObjects) []string {
	var out []string
	for _, d := range o.deployments {
		out = append(out, d.Namespace)
	}
	for _, s := range o.services {
		out = append(out, s.Namespace)
	}
	for _, c := range o.configMaps {
		out = append(out, c.Namespace)
	}
	for _, s := range o.secrets {
		out = append(out, s.Namespace)
	}
	for _, p := range o.pdbs {
		out = append(out, p.Namespace)
	}
	for _, p := range o.pvcs {
		out = append(out, p.Namespace)
	}
	return out
}

// TestKubernetesRedis checks that the Redis stepup is configured for is the
// one redis.yaml runs, with the persistence and eviction policy stepup's
// single-use markers need.
func TestKubernetesRedis(t *testing.T) {
	s := loadStepupK8s(t)
	addrs := s.cfg.Sessions.Store.Redis.Addrs
	if len(addrs) != 1 {
		t.Fatalf("sessions.store.redis.addrs = %q, want the one Redis of redis.yaml", addrs)
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	svc := s.objs.services["stepup-redis"]
	if svc == nil {
		t.Fatal("no Service stepup-redis")
	}
	if want := svc.Name + "." + svc.Namespace + ".svc.cluster.local"; host != want && host != svc.Name {
		t.Errorf("Redis address host %q is not the Service %s", host, want)
	}
	d := s.objs.deployments["stepup-redis"]
	if d == nil {
		t.Fatal("no Deployment stepup-redis")
	}
	if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Error("Service stepup-redis does not select the Redis pods")
	}
	c := d.Spec.Template.Spec.Containers[0]
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if strconv.Itoa(int(svc.Spec.Ports[i].Port)) == port {
			svcPort = &svc.Spec.Ports[i]
		}
	}
	if svcPort == nil {
		t.Fatalf("Service stepup-redis has no port %s", port)
	}
	if got := containerPort(t, &c, svcPort.TargetPort); got != 6379 {
		t.Errorf("Redis listens on %d, the Service targets %d", 6379, got)
	}
	args := strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction", "--requirepass $(REDIS_PASSWORD)"} {
		if !strings.Contains(args, want) {
			t.Errorf("Redis runs with %q, want %q", args, want)
		}
	}
	// The same password on both sides.
	redisEnv, stepupEnv := secretRef(c.Env, "REDIS_PASSWORD"), secretRef(s.container.Env, s.cfg.Sessions.Store.Redis.Password.Env)
	if redisEnv == nil || stepupEnv == nil || *redisEnv != *stepupEnv {
		t.Errorf("Redis's password (%v) and stepup's (%v) do not come from the same Secret key", redisEnv, stepupEnv)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("Redis strategy = %q, want Recreate (one writer on its volume)", d.Spec.Strategy.Type)
	}
	if psc := d.Spec.Template.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("Redis pod securityContext.runAsNonRoot is not true")
	}
}

func secretRef(env []corev1.EnvVar, name string) *corev1.SecretKeySelector {
	for _, e := range env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// TestKubernetesStrictDecoding proves that the decoding above refuses what
// Kubernetes would refuse: a misspelt field.
func TestKubernetesStrictDecoding(t *testing.T) {
	good := readFile(t, "deploy/kubernetes/service.yaml")
	var svc corev1.Service
	js, err := yaml.YAMLToJSON(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(js, &svc); err != nil {
		t.Fatalf("service.yaml: %v", err)
	}
	bad := bytes.Replace(good, []byte("appProtocol: grpc"), []byte("appProtocl: grpc"), 1)
	if bytes.Equal(bad, good) {
		t.Fatal("service.yaml has no appProtocol: grpc to misspell")
	}
	js, err = yaml.YAMLToJSON(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(js, &corev1.Service{}); err == nil || !strings.Contains(err.Error(), "appProtocl") {
		t.Errorf("a misspelt field decoded with error %v, want an unknown-field error", err)
	}
}
