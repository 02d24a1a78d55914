// Package helm holds the Helm chart of aily_exporter (aily-exporter/); its
// tests render the chart with helm and check what it renders.
package helm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/google/go-cmp/cmp"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	chart = "aily-exporter"
	// helmEnv names the helm binary the rendering tests run; make test-helm
	// sets it to the pinned ./bin/helm it installs.
	helmEnv = "AILY_HELM"
)

// variations are the documented ways to install the chart: the values files
// under ci/ (helm's convention), and the defaults alone.
var variations = []string{"", "default", "existing-secret", "ha", "persistence", "web-config", "demo"}

// helmPath is the helm binary to run, or a skip when none is asked for.
func helmPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv(helmEnv)
	if p == "" {
		t.Skipf("%s is not set: the chart is rendered by `make test-helm` (part of make test), which installs helm into ./bin", helmEnv)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v", helmEnv, p, err)
	}
	return p
}

func valuesArgs(variation string) []string {
	if variation == "" {
		return nil
	}
	return []string{"--values", filepath.Join(chart, "ci", variation+"-values.yaml")}
}

// object is one rendered manifest, decoded strictly into its Go type.
type object struct {
	kind, name string
	value      any
}

// render runs helm template and decodes every object strictly: a field that
// its Go type does not have (a misspelt one) fails the test. extra are more
// arguments of helm template.
func render(t *testing.T, helm, variation string, extra ...string) []object {
	t.Helper()
	args := append([]string{"template", "rel", chart, "--namespace", "monitoring"}, valuesArgs(variation)...)
	args = append(args, extra...)
	out, err := exec.Command(helm, args...).Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderrOf(err))
	}
	var objects []object
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := sigsyaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v\n%s", variation, err, doc)
		}
		if meta.Kind == "" {
			continue // only comments
		}
		proto, ok := chartKinds[meta.APIVersion+"/"+meta.Kind]
		if !ok {
			t.Errorf("%s: no Go type for %s %s", variation, meta.APIVersion, meta.Kind)
			continue
		}
		v := reflect.New(reflect.TypeOf(proto)).Interface()
		if err := sigsyaml.UnmarshalStrict([]byte(doc), v); err != nil {
			t.Errorf("%s: %s %s: %v", variation, meta.Kind, meta.Metadata.Name, err)
			continue
		}
		objects = append(objects, object{meta.Kind, meta.Metadata.Name, v})
	}
	return objects
}

// chartKinds are the Go types of the objects the chart renders, by
// apiVersion/kind: each object is decoded strictly into a new one.
var chartKinds = map[string]any{
	"v1/ConfigMap": corev1.ConfigMap{}, "v1/Secret": corev1.Secret{}, "v1/Service": corev1.Service{},
	"v1/ServiceAccount": corev1.ServiceAccount{}, "apps/v1/Deployment": appsv1.Deployment{},
	"apps/v1/StatefulSet": appsv1.StatefulSet{}, "policy/v1/PodDisruptionBudget": policyv1.PodDisruptionBudget{},
	"monitoring.coreos.com/v1/ServiceMonitor": monitoringv1.ServiceMonitor{},
	"monitoring.coreos.com/v1/PrometheusRule": monitoringv1.PrometheusRule{},
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

func find[T any](objects []object) []T {
	var out []T
	for _, o := range objects {
		if v, ok := o.value.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// podSpec is the rendered workload's pod, and its kind.
func podSpec(t *testing.T, objects []object) (string, corev1.PodSpec, int32) {
	t.Helper()
	deps, sets := find[*appsv1.Deployment](objects), find[*appsv1.StatefulSet](objects)
	switch {
	case len(deps) == 1 && len(sets) == 0:
		return "Deployment", deps[0].Spec.Template.Spec, *deps[0].Spec.Replicas
	case len(sets) == 1 && len(deps) == 0:
		return "StatefulSet", sets[0].Spec.Template.Spec, *sets[0].Spec.Replicas
	}
	t.Fatalf("%d Deployments and %d StatefulSets, want one workload", len(deps), len(sets))
	return "", corev1.PodSpec{}, 0
}

// forEachVariation runs f on every variation, each a subtest named after
// it ("defaults" for values.yaml's own).
func forEachVariation(t *testing.T, f func(t *testing.T, helm, variation string)) {
	helm := helmPath(t)
	for _, variation := range variations {
		name := variation
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) { f(t, helm, variation) })
	}
}

func TestChartLintsAndRenders(t *testing.T) {
	forEachVariation(t, func(t *testing.T, helm, variation string) {
		args := append([]string{"lint", "--strict", chart}, valuesArgs(variation)...)
		if out, err := exec.Command(helm, args...).CombinedOutput(); err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		objects := render(t, helm, variation)
		kind, pod, replicas := podSpec(t, objects)
		checkPod(t, pod)

		wantKind, wantReplicas := "Deployment", int32(1)
		switch variation {
		case "persistence":
			wantKind = "StatefulSet"
			set := find[*appsv1.StatefulSet](objects)[0]
			if len(set.Spec.VolumeClaimTemplates) != 1 || set.Spec.VolumeClaimTemplates[0].Name != "data" {
				t.Errorf("StatefulSet without the data claim: %+v", set.Spec.VolumeClaimTemplates)
			}
		case "ha":
			wantReplicas = 2
			if len(find[*policyv1.PodDisruptionBudget](objects)) != 1 {
				t.Error("the HA pair has no PodDisruptionBudget")
			}
		}
		if kind != wantKind || replicas != wantReplicas {
			t.Errorf("workload %s of %d replicas, want %s of %d", kind, replicas, wantKind, wantReplicas)
		}
		if kind == "Deployment" && variation != "demo" && !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == "data" && v.EmptyDir != nil
		}) {
			t.Error("a Deployment keeps its state in an emptyDir named data")
		}

		args2 := pod.Containers[0].Args
		switch variation {
		case "demo":
			if !slices.Contains(args2, "--demo") || slices.ContainsFunc(args2, func(a string) bool { return strings.HasPrefix(a, "--storage.path") }) {
				t.Errorf("demo args %q, want --demo and no --storage.path (the demo keeps no state)", args2)
			}
		default:
			for _, want := range []string{"--config.file=/etc/aily_exporter/config/aily.yml", "--storage.path=/data"} {
				if !slices.Contains(args2, want) {
					t.Errorf("args %q lack %s", args2, want)
				}
			}
		}
		if web := slices.Contains(args2, "--web.config.file=/etc/aily_exporter/web/web-config.yml"); web != (variation == "web-config") {
			t.Errorf("args %q: --web.config.file given: %v", args2, web)
		}
		checkMounts(t, pod)
		checkMonitoring(t, variation, objects)
	})
}

// checkPod checks what every variation's pod must have.
func checkPod(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.FSGroup == nil || *psc.FSGroup != 65532 {
		t.Errorf("pod securityContext %+v, want non-root uid 65532 and fsGroup 65532", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v, want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/-/healthy" {
		t.Errorf("liveness probe %+v, want GET /-/healthy", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
		t.Errorf("readiness probe %+v, want GET /-/ready", c.ReadinessProbe)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v, want memory requests and limits", c.Resources)
	}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath, which never sees an update", m.Name)
		}
	}
}

// checkMounts checks that every mount has its volume and that none lies
// inside another (a mount point inside a ConfigMap volume is fragile).
func checkMounts(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	mounts := pod.Containers[0].VolumeMounts
	for _, m := range mounts {
		if m.Name != "data" && !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			t.Errorf("mount %s has no volume", m.Name)
		}
		for _, o := range mounts {
			if o.Name != m.Name && strings.HasPrefix(o.MountPath, m.MountPath+"/") {
				t.Errorf("mount %s (%s) lies inside %s (%s)", o.Name, o.MountPath, m.Name, m.MountPath)
			}
		}
	}
}

// checkMonitoring checks the Prometheus Operator objects and the dashboard.
func checkMonitoring(t *testing.T, variation string, objects []object) {
	t.Helper()
	monitors := find[*monitoringv1.ServiceMonitor](objects)
	rules := find[*monitoringv1.PrometheusRule](objects)
	if on := slices.Contains([]string{"ha", "web-config", "demo"}, variation); on != (len(monitors) == 1) {
		t.Errorf("%d ServiceMonitors", len(monitors))
	}
	for _, m := range monitors {
		e := m.Spec.Endpoints[0]
		if e.Path != "/metrics" || e.ScrapeTimeout != "25s" || e.Interval != "30s" {
			t.Errorf("ServiceMonitor endpoint path %q interval %q scrapeTimeout %v", e.Path, e.Interval, e.ScrapeTimeout)
		}
		if m.Spec.JobLabel != "app.kubernetes.io/name" {
			t.Errorf("ServiceMonitor jobLabel %q: the job must be named aily* for AilyExporterDown", m.Spec.JobLabel)
		}
	}
	for _, r := range rules {
		checkRules(t, r)
	}
	for _, cm := range find[*corev1.ConfigMap](objects) {
		if _, ok := cm.Data["aily.json"]; !ok {
			continue
		}
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboard ConfigMap labels %v, want grafana_dashboard: \"1\"", cm.Labels)
		}
		want, err := os.ReadFile("../../dashboards/aily.json")
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["aily.json"] != strings.TrimSuffix(string(want), "\n") {
			t.Error("the dashboard ConfigMap's aily.json differs from dashboards/aily.json")
		}
	}
}

// checkRules checks that the PrometheusRule carries dashboards/alerts.yml's
// groups as they are, and that promtool accepts them.
func checkRules(t *testing.T, r *monitoringv1.PrometheusRule) {
	t.Helper()
	got, err := json.Marshal(map[string]any{"groups": r.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../dashboards/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file monitoringv1.PrometheusRuleSpec
	if err := sigsyaml.UnmarshalStrict(b, &file); err != nil {
		t.Fatalf("dashboards/alerts.yml as a PrometheusRule spec: %v", err)
	}
	if diff := cmp.Diff(file.Groups, r.Spec.Groups); diff != "" {
		t.Errorf("the PrometheusRule's groups differ from dashboards/alerts.yml (-file +rule):\n%s", diff)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		promtool = "../../bin/promtool"
	}
	rulesFile := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rulesFile, got, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the PrometheusRule's groups: %v\n%s", err, out)
	}
}

// TestChartFilesAreCopies: the chart's alerts and dashboard are byte copies
// of the files users download; make generate copies them.
func TestChartFilesAreCopies(t *testing.T) {
	for _, name := range []string{"alerts.yml", "aily.json"} {
		want, err := os.ReadFile(filepath.Join("../../dashboards", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chart, "files", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/files/%s differs from dashboards/%s: run make generate", chart, name, name)
		}
	}
}

// chartManaged are the flags the chart sets itself, or that have no place in
// a pod.
// shard, total-shards and shard.key come from sharding.*.
var chartManaged = []string{"config.file", "config.check", "demo", "storage.path", "web.config.file", "shard", "total-shards", "shard.key",
	"web.listen-address", "web.systemd-socket", "version"}

func TestChartFlagsAreTheExportersDefaults(t *testing.T) {
	documented := testkit.FlagTable(t, "../../docs/configuration.md", "## Flags")
	if len(documented) < 20 {
		t.Fatalf("found %d flags in the flags table of docs/configuration.md, want them all", len(documented))
	}
	b, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Flags map[string]any `yaml:"flags"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	for name, v := range values.Flags {
		want, ok := documented[name]
		if !ok {
			t.Errorf("values.yaml flags.%s is not in the flags table of docs/configuration.md", name)
			continue
		}
		if got := fmt.Sprint(v); got != want {
			t.Errorf("values.yaml flags.%s = %s, the exporter's default is %s", name, got, want)
		}
	}
	for name := range documented {
		if _, ok := values.Flags[name]; !ok && !slices.Contains(chartManaged, name) {
			t.Errorf("--%s is in the flags table of docs/configuration.md but not in values.yaml flags", name)
		}
	}
}

// TestRenderedArgsAreDocumentedFlags: every argument of every variation is a
// flag of the documented table, and the default rendering passes the values'
// flags as they are.
func TestRenderedArgsAreDocumentedFlags(t *testing.T) {
	helm := helmPath(t)
	documented := testkit.FlagTable(t, "../../docs/configuration.md", "## Flags")
	for _, variation := range variations {
		_, pod, _ := podSpec(t, render(t, helm, variation))
		for _, a := range pod.Containers[0].Args {
			name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			def, ok := documented[name]
			if !strings.HasPrefix(a, "--") || !ok {
				t.Errorf("%s: argument %q is not a documented flag", variation, a)
				continue
			}
			if variation == "" && hasValue && !slices.Contains(chartManaged, name) && value != def {
				t.Errorf("default argument %q, the documented default is %s", a, def)
			}
		}
	}
}

// schemaFile is the chart's JSON Schema of its values, which helm checks
// the values against on install, upgrade, template and lint.
const schemaFile = chart + "/values.schema.json"

// TestValuesSchemaRefusesMistakes: a misspelt key, at the top level, in an
// object of the chart or in an app of the exporter's configuration, and a
// value of the wrong type, fail helm lint --strict and helm template with an
// error that names the key; values.yaml's defaults and the ci/ variations
// pass (TestChartLintsAndRenders), and so do the cases below that are right.
func TestValuesSchemaRefusesMistakes(t *testing.T) {
	helm := helmPath(t)
	const app = `config:
  apps:
    - name: helpdesk
      app_id: cli_a5xxxxxxxxxxxxx
`
	for _, c := range []struct {
		name, values string
		// want are strings the error must hold: the key, and what is wrong.
		want []string
	}{
		{"misspelt top-level key", "serviceMonitr:\n  enabled: true\n", []string{"'serviceMonitr' not allowed"}},
		{"misspelt app key", app + "      app_secret_fle: /etc/aily_exporter/secrets/helpdesk\n      sessions: [session_4dfunz7sp1g8m]\n", []string{"/config/apps/0", "'app_secret_fle' not allowed"}},
		{"misspelt config key", "config:\n  aps: []\n", []string{"/config", "'aps' not allowed"}},
		{"misspelt key of serviceMonitor", "serviceMonitor:\n  intervl: 30s\n", []string{"/serviceMonitor", "'intervl' not allowed"}},
		{"misspelt flag", "flags:\n  feishu.timout: 10s\n", []string{"/flags", "'feishu.timout' not allowed"}},
		{"duration without a unit", "flags:\n  feishu.timeout: 10\n", []string{"/flags/feishu.timeout", "want string"}},
		{"image tag read as a number", "image:\n  tag: 1.10\n", []string{"/image/tag", "want string"}},
		{"probe scheme in lower case", "webConfig:\n  scheme: https\n", []string{"/webConfig/scheme", "'HTTP', 'HTTPS'"}},
		{"label value read as a number", "dashboard:\n  labels:\n    grafana_dashboard: 1\n", []string{"/dashboard/labels/grafana_dashboard", "want string"}},
		{"app name with a space", "config:\n  apps:\n    - name: help desk\n      app_id: x\n      app_secret_file: /s\n      sessions: [s]\n", []string{"/config/apps/0/name", "does not match pattern"}},
		{"both app_secret and app_secret_file", app + "      app_secret: s\n      app_secret_file: /s\n      sessions: [s]\n", []string{"/config/apps/0/app_secret_file"}},
		{"user token with app credentials", app + "      app_secret_file: /s\n      user_access_token_file: /t\n      sessions: [s]\n", []string{"/config/apps/0/app_id", "/config/apps/0/app_secret_file"}},
		{"app_id without a secret", app + "      sessions: [s]\n", []string{"/config/apps/0", "missing property 'app_secret'", "missing property 'app_secret_file'"}},
		{"no credentials", "config:\n  apps:\n    - name: helpdesk\n      sessions: [s]\n", []string{"/config/apps/0", "missing property 'app_id'", "missing property 'user_access_token_file'"}},
		{"no sessions", app + "      app_secret_file: /s\n      sessions: []\n", []string{"/config/apps/0/sessions", "minItems", "missing property 'sessions_file'"}},
		{"session listed twice", app + "      app_secret_file: /s\n      sessions: [s1, s1]\n", []string{"/config/apps/0/sessions", "equal"}},
		{"base_url with a path", app + "      app_secret_file: /s\n      base_url: https://open.feishu.cn/open-apis\n      sessions: [s]\n", []string{"/config/apps/0/base_url", "does not match pattern"}},
		{"sessions_url with a password in it", app + "      app_secret_file: /s\n      sessions_url: https://u:pw@agent.example.com/sessions\n", []string{"/config/apps/0/sessions_url", "does not match pattern"}},
		{"sessions_refresh_interval without sessions_url", app + "      app_secret_file: /s\n      sessions: [s]\n      sessions_refresh_interval: 5m\n", []string{"/config/apps/0", "'sessions_url' required, if 'sessions_refresh_interval' exists"}},
		{"misspelt key in sessions_http_config", app + "      app_secret_file: /s\n      sessions_url: https://agent.example.com/sessions\n      sessions_http_config: {basicauth: {}}\n", []string{"/config/apps/0/sessions_http_config", "'basicauth' not allowed"}},

		// Right, and accepted.
		{"every key of an app and both kinds of credentials", `config:
  apps:
    - name: helpdesk
      app_id: cli_a5xxxxxxxxxxxxx
      app_secret: "${HELPDESK_SECRET}"
      base_url: https://open.larksuite.com/
      sessions: [session_4dfunz7sp1g8m]
      sessions_file: /etc/aily_exporter/sessions/helpdesk.sessions
      per_session: false
    - name: sales_2
      user_access_token_file: /etc/aily_exporter/secrets/sales
      sessions: []
      sessions_file: /etc/aily_exporter/sessions/sales.sessions
    - name: agents
      app_id: cli_b7xxxxxxxxxxxxx
      app_secret_file: /etc/aily_exporter/secrets/agents
      sessions_url: https://agent.example.com/aily/sessions?app=agents
      sessions_refresh_interval: 30s
      sessions_http_config:
        bearer_token_file: /etc/aily_exporter/secrets/agents-token
        tls_config: {ca_file: /etc/aily_exporter/secrets/ca.pem}
existingSecret: aily-secrets
`, nil},
		{"a parent chart's global and condition", "global: {imageRegistry: r.example.com}\nenabled: true\n", nil},
		{"other documented forms", `podDisruptionBudget: {maxUnavailable: 50%}
persistence: {enabled: true, size: 2147483648}
serviceMonitor: {enabled: true, interval: 1m, scrapeTimeout: 55s}
flags: {poll.min-interval: 1m30s, feishu.rate-limit: 2.5, web.disable-exporter-metrics: true}
`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(file, []byte(c.values), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"lint", "--strict", chart, "--values", file},
				{"template", "rel", chart, "--values", file},
			} {
				out, err := exec.Command(helm, args...).CombinedOutput()
				switch {
				case c.want == nil && err != nil:
					t.Errorf("helm %s refused right values: %v\n%s", args[0], err, out)
				case c.want != nil && err == nil:
					t.Errorf("helm %s accepted %s:\n%s", args[0], c.name, c.values)
				case c.want != nil:
					for _, w := range c.want {
						if !strings.Contains(string(out), w) {
							t.Errorf("helm %s: the error lacks %q:\n%s", args[0], w, out)
						}
					}
				}
			}
		})
	}
	// --set gives a number for what looks like one: a tag of digits and
	// letters stays a string.
	if out, err := exec.Command(helm, "template", "rel", chart, "--set", "image.tag=v1.0.0,replicaCount=2,flags.feishu\\.page-size=100").CombinedOutput(); err != nil {
		t.Errorf("helm template --set: %v\n%s", err, out)
	}
}

// schemaNode is the part of a JSON Schema the tests read.
type schemaNode struct {
	Type                 any                    `json:"type"`
	Ref                  string                 `json:"$ref"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
	Defs                 map[string]*schemaNode `json:"$defs"`
	Enum                 []any                  `json:"enum"`
	OneOf                []*schemaNode          `json:"oneOf"`
}

func readSchema(t *testing.T) *schemaNode {
	t.Helper()
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var s schemaNode
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	return &s
}

// closed reports whether the schema refuses keys it does not list.
func (s *schemaNode) closed() bool { return s.AdditionalProperties == false }

// typed reports whether the schema says what a value must be.
func (s *schemaNode) typed() bool {
	return s.Type != nil || s.Ref != "" || s.Enum != nil || s.OneOf != nil
}

// yamlKeys are the YAML keys of a struct's fields.
func yamlKeys(v any) []string {
	var keys []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	return keys
}

// TestValuesSchemaHasTheExportersConfigKeys: the schema of config lists
// exactly the keys the exporter decodes (config.Config and config.App, read
// strictly), and refuses any other; a key added to the exporter must be
// added to the schema, or the chart would refuse it.
func TestValuesSchemaHasTheExportersConfigKeys(t *testing.T) {
	s := readSchema(t)
	cfg := s.Properties["config"]
	if cfg == nil || !cfg.closed() {
		t.Fatal("the schema's config is missing or takes any key")
	}
	if got, want := slices.Sorted(maps.Keys(cfg.Properties)), yamlKeys(config.Config{}); !slices.Equal(got, want) {
		t.Errorf("schema config keys %v, the exporter's configuration has %v", got, want)
	}
	app := s.Defs["app"]
	if apps := cfg.Properties["apps"]; apps == nil || app == nil {
		t.Fatal("the schema has no config.apps or no $defs/app")
	}
	if !app.closed() {
		t.Error("the schema's app takes any key: a misspelt one would reach the exporter, which refuses it at start")
	}
	if got, want := slices.Sorted(maps.Keys(app.Properties)), yamlKeys(config.App{}); !slices.Equal(got, want) {
		t.Errorf("schema app keys %v, config.App has %v", got, want)
	}
}

// TestValuesSchemaCoversValuesYAML: every value of values.yaml has a type in
// the schema, and every object values.yaml documents (the top level,
// image, flags, serviceMonitor…) lists exactly its keys in the schema and
// refuses others, unless it is a Kubernetes or Prometheus Operator type
// passed through as it is.
func TestValuesSchemaCoversValuesYAML(t *testing.T) {
	s := readSchema(t)
	b, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	// Passed through to Kubernetes or the Prometheus Operator, which check
	// them; or maps whose keys are the user's (labels, secrets, files).
	open := []string{"resources", "podSecurityContext", "securityContext", "affinity", "webConfig.config",
		"serviceMonitor.tlsConfig", "serviceMonitor.basicAuth"}
	// Not in values.yaml, but allowed: what a parent chart sets.
	parent := []string{"global", "enabled"}

	var walk func(path string, node *schemaNode, value map[string]any)
	walk = func(path string, node *schemaNode, value map[string]any) {
		if node.Ref != "" {
			node = s.Defs[strings.TrimPrefix(node.Ref, "#/$defs/")]
		}
		if node.Properties == nil {
			if slices.Contains(open, path) || node.AdditionalProperties != nil {
				return // a Kubernetes type, or a map of the user's keys with typed values
			}
			t.Errorf("%s: the schema lists no keys, and does not type the values of a map", path)
			return
		}
		if !node.closed() {
			t.Errorf("%s: the schema takes keys it does not list", path)
		}
		want := slices.Sorted(maps.Keys(value))
		if path == "" {
			want = append(want, parent...)
			slices.Sort(want)
		}
		if got := slices.Sorted(maps.Keys(node.Properties)); !slices.Equal(got, want) {
			t.Errorf("%s: schema keys %v, values.yaml has %v", path, got, want)
		}
		for k, v := range value {
			p := strings.TrimPrefix(path+"."+k, ".")
			sub := node.Properties[k]
			if sub == nil {
				continue
			}
			if !sub.typed() {
				t.Errorf("%s: no type in the schema", p)
			}
			if m, ok := v.(map[string]any); ok && !slices.Contains(open, p) {
				walk(p, sub, m)
			}
		}
	}
	walk("", s, values)
}

// notes renders the chart's NOTES.txt, which helm template leaves out: a
// copy of the chart with a template that includes it into a ConfigMap.
func notes(t *testing.T, helm string, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), chart)
	if err := os.CopyFS(dir, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	const wrapper = `apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ include (print $.Template.BasePath "/NOTES.txt") . | toJson }}
`
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(wrapper), 0o600); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"template", "rel", dir, "--namespace", "monitoring", "--show-only", "templates/zz-notes.yaml"}, args...)
	out, err := exec.Command(helm, args...).Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderrOf(err))
	}
	var cm corev1.ConfigMap
	if err := sigsyaml.UnmarshalStrict(out, &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data["notes"]
}

// secretCommand is NOTES.txt's command that creates the Secret: its
// namespace, name and keys.
var secretCommand = regexp.MustCompile(`kubectl -n (\S+) create secret generic (\S+)((?: --from-file=\S+)+)`)

// TestNotes: NOTES.txt says how to reach /metrics and /status, that the
// default image is not published and how to build it, and how to create the
// Secret the pod mounts: with the name the workload mounts and the keys
// that the apps' app_secret_file read.
func TestNotes(t *testing.T) {
	forEachVariation(t, func(t *testing.T, helm, variation string) {
		n := notes(t, helm, valuesArgs(variation)...)
		scheme := "http"
		if variation == "web-config" {
			scheme = "https"
		}
		for _, want := range []string{
			"kubectl -n monitoring port-forward svc/rel-aily-exporter 9851:9851",
			scheme + "://localhost:9851/metrics",
			"open " + scheme + "://localhost:9851/status",
			"aily_exporter:0.1.0 is not published",
			"docker build -t <registry>/aily_exporter:0.1.0",
			"docker push <registry>/aily_exporter:0.1.0",
			"--set image.repository=<registry>/aily_exporter",
		} {
			if !strings.Contains(n, want) {
				t.Errorf("NOTES lack %q:\n%s", want, n)
			}
		}
		m := secretCommand.FindStringSubmatch(n)
		switch variation {
		case "demo":
			if m != nil || strings.Contains(n, "SECRET") {
				t.Errorf("the demo's NOTES ask for a Secret:\n%s", n)
			}
			return
		case "default", "web-config": // the chart creates the Secret from values
			if m != nil || !strings.Contains(n, "the chart created the Secret rel-aily-exporter") {
				t.Errorf("NOTES do not say that the chart created the Secret:\n%s", n)
			}
			return
		}
		if m == nil {
			t.Fatalf("NOTES have no kubectl create secret:\n%s", n)
		}
		checkSecretCommand(t, helm, variation, n, m)
	})
	helm := helmPath(t)

	t.Run("no Secret set", func(t *testing.T) {
		// The apps read a secret file, but neither existingSecret nor secrets is set.
		n := notes(t, helm, "--values", filepath.Join(chart, "ci", "ha-values.yaml"), "--set", "existingSecret=")
		m := secretCommand.FindStringSubmatch(n)
		if m == nil || !strings.Contains(n, "--set existingSecret="+m[2]) {
			t.Fatalf("NOTES do not say to create a Secret and set existingSecret:\n%s", n)
		}
		checkSecretCommand(t, helm, "ha", n, m)
	})

	t.Run("published image", func(t *testing.T) {
		n := notes(t, helm, "--set", "image.repository=registry.example.com/aily_exporter")
		if strings.Contains(n, "not published") || strings.Contains(n, "docker build") {
			t.Errorf("NOTES say to build an image that is set:\n%s", n)
		}
	})
}

// checkSecretCommand checks NOTES' kubectl create secret against what the
// chart renders with existingSecret set to the Secret it creates: the same
// namespace, the Secret the pod mounts, a key for each app_secret_file (with
// no app, the example app_secret_file NOTES give).
func checkSecretCommand(t *testing.T, helm, variation, notes string, m []string) {
	t.Helper()
	ns, name := m[1], m[2]
	if ns != "monitoring" {
		t.Errorf("kubectl create secret in %s, the release is in monitoring", ns)
	}
	var keys []string
	for _, f := range strings.Fields(m[3]) {
		key, file, _ := strings.Cut(strings.TrimPrefix(f, "--from-file="), "=")
		if file == "" {
			t.Errorf("%s: --from-file without a file", f)
		}
		keys = append(keys, key)
	}

	objects := render(t, helm, variation, "--set", "existingSecret="+name)
	_, pod, _ := podSpec(t, objects)
	var mounted string
	for _, v := range pod.Volumes {
		if v.Name == "secrets" && v.Secret != nil {
			mounted = v.Secret.SecretName
		}
	}
	var wantKeys []string
	for _, cm := range find[*corev1.ConfigMap](objects) {
		if _, ok := cm.Data["aily.yml"]; !ok {
			continue
		}
		var cfg config.Config
		if err := yaml.Unmarshal([]byte(cm.Data["aily.yml"]), &cfg); err != nil {
			t.Fatal(err)
		}
		for _, a := range cfg.Apps {
			if k, ok := strings.CutPrefix(a.AppSecretFile, "/etc/aily_exporter/secrets/"); ok {
				wantKeys = append(wantKeys, k)
			}
		}
	}
	if mounted != name {
		t.Errorf("NOTES create the Secret %s, the pod mounts %q", name, mounted)
	}
	if len(wantKeys) == 0 {
		for _, k := range keys {
			if !strings.Contains(notes, "app_secret_file: /etc/aily_exporter/secrets/"+k) {
				t.Errorf("NOTES create the key %s with no app_secret_file reading it:\n%s", k, notes)
			}
		}
		if len(keys) == 0 {
			t.Error("NOTES create a Secret without keys")
		}
	} else if !slices.Equal(keys, wantKeys) {
		t.Errorf("NOTES create the keys %v, the apps read %v", keys, wantKeys)
	}
}
