// Package helm holds the Helm chart of aily_exporter (aily-exporter/); its
// tests render the chart with helm and check what it renders.
package helm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

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
// its Go type does not have (a misspelt one) fails the test.
func render(t *testing.T, helm, variation string) []object {
	t.Helper()
	args := append([]string{"template", "rel", chart, "--namespace", "monitoring"}, valuesArgs(variation)...)
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
		var v any
		switch meta.APIVersion + "/" + meta.Kind {
		case "v1/ConfigMap":
			v = &corev1.ConfigMap{}
		case "v1/Secret":
			v = &corev1.Secret{}
		case "v1/Service":
			v = &corev1.Service{}
		case "v1/ServiceAccount":
			v = &corev1.ServiceAccount{}
		case "apps/v1/Deployment":
			v = &appsv1.Deployment{}
		case "apps/v1/StatefulSet":
			v = &appsv1.StatefulSet{}
		case "policy/v1/PodDisruptionBudget":
			v = &policyv1.PodDisruptionBudget{}
		case "monitoring.coreos.com/v1/ServiceMonitor":
			v = &monitoringv1.ServiceMonitor{}
		case "monitoring.coreos.com/v1/PrometheusRule":
			v = &monitoringv1.PrometheusRule{}
		default:
			t.Errorf("%s: no Go type for %s %s", variation, meta.APIVersion, meta.Kind)
			continue
		}
		if err := sigsyaml.UnmarshalStrict([]byte(doc), v); err != nil {
			t.Errorf("%s: %s %s: %v", variation, meta.Kind, meta.Metadata.Name, err)
			continue
		}
		objects = append(objects, object{meta.Kind, meta.Metadata.Name, v})
	}
	return objects
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

func TestChartLintsAndRenders(t *testing.T) {
	helm := helmPath(t)
	for _, variation := range variations {
		name := variation
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
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

// readmeFlags are the flags of the README's flags table, with their defaults.
func readmeFlags(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `--([a-z0-9.-]+)`(?:, `--[a-z0-9.-]+`)? \\|([^|]*)\\|")
	flags := map[string]string{}
	in := false
	for s := bufio.NewScanner(f); s.Scan(); {
		line := s.Text()
		switch {
		case line == "### Flags":
			in = true
		case in && strings.HasPrefix(line, "#"):
			return flags
		case in:
			if m := row.FindStringSubmatch(line); m != nil {
				flags[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
			}
		}
	}
	return flags
}

// chartManaged are the flags the chart sets itself, or that have no place in
// a pod.
var chartManaged = []string{"config.file", "config.check", "demo", "storage.path", "web.config.file",
	"web.listen-address", "web.systemd-socket", "version"}

func TestChartFlagsAreTheExportersDefaults(t *testing.T) {
	readme := readmeFlags(t)
	if len(readme) < 20 {
		t.Fatalf("found %d flags in the README's flags table, want them all", len(readme))
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
		want, ok := readme[name]
		if !ok {
			t.Errorf("values.yaml flags.%s is not in the README's flags table", name)
			continue
		}
		if got := fmt.Sprint(v); got != want {
			t.Errorf("values.yaml flags.%s = %s, the exporter's default is %s", name, got, want)
		}
	}
	for name := range readme {
		if _, ok := values.Flags[name]; !ok && !slices.Contains(chartManaged, name) {
			t.Errorf("--%s is in the README's flags table but not in values.yaml flags", name)
		}
	}
}

// TestRenderedArgsAreDocumentedFlags: every argument of every variation is a
// flag of the README's table, and the default rendering passes the values'
// flags as they are.
func TestRenderedArgsAreDocumentedFlags(t *testing.T) {
	helm := helmPath(t)
	readme := readmeFlags(t)
	for _, variation := range variations {
		_, pod, _ := podSpec(t, render(t, helm, variation))
		for _, a := range pod.Containers[0].Args {
			name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			def, ok := readme[name]
			if !strings.HasPrefix(a, "--") || !ok {
				t.Errorf("%s: argument %q is not a flag of the README", variation, a)
				continue
			}
			if variation == "" && hasValue && !slices.Contains(chartManaged, name) && value != def {
				t.Errorf("default argument %q, the README's default is %s", a, def)
			}
		}
	}
}
