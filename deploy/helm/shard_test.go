package helm

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestChartShards: sharding.shards: N renders a StatefulSet of N pods, each
// started with --shard=auto --total-shards=N and a claim of its own;
// highAvailability a second StatefulSet of the same layout; the Service, and
// so the ServiceMonitor, selects the pods of both; the PodDisruptionBudget
// lets one pod go at a time.
func TestChartShards(t *testing.T) {
	helm := helmPath(t)
	base := []string{"--values", filepath.Join(chart, "ci", "ha-values.yaml"), "--set", "replicaCount=1"}
	for _, tc := range []struct {
		name   string
		set    []string
		shards int32
		key    string
		sets   []string // StatefulSet names
	}{
		{"shards", []string{"sharding.shards=3"}, 3, "app", []string{"rel-aily-exporter"}},
		{"shards with session keys and HA", []string{"sharding.shards=4", "sharding.key=session", "highAvailability=true"}, 4, "session",
			[]string{"rel-aily-exporter", "rel-aily-exporter-ha"}},
		{"HA of one shard", []string{"highAvailability=true"}, 1, "app", []string{"rel-aily-exporter", "rel-aily-exporter-ha"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := slices.Clone(base)
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			lint := append([]string{"lint", "--strict", chart}, args...)
			if out, err := exec.Command(helm, lint...).CombinedOutput(); err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(lint, " "), err, out)
			}
			objects := render(t, helm, "", args...)
			if deps := find[*appsv1.Deployment](objects); len(deps) != 0 {
				t.Errorf("%d Deployments, want none", len(deps))
			}
			sets := find[*appsv1.StatefulSet](objects)
			var names []string
			for _, s := range sets {
				names = append(names, s.Name)
			}
			if !slices.Equal(names, tc.sets) {
				t.Fatalf("StatefulSets %v, want %v", names, tc.sets)
			}
			services := find[*corev1.Service](objects)
			if len(services) != 1 {
				t.Fatalf("%d Services, want 1", len(services))
			}
			svc := labels.SelectorFromSet(services[0].Spec.Selector)
			for _, s := range sets {
				if *s.Spec.Replicas != tc.shards {
					t.Errorf("%s: %d replicas, want %d, one per shard", s.Name, *s.Spec.Replicas, tc.shards)
				}
				if s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
					t.Errorf("%s: podManagementPolicy %q, want Parallel: the shards start together", s.Name, s.Spec.PodManagementPolicy)
				}
				if len(s.Spec.VolumeClaimTemplates) != 1 || s.Spec.VolumeClaimTemplates[0].Name != "data" {
					t.Errorf("%s: claims %+v, want one named data per pod", s.Name, s.Spec.VolumeClaimTemplates)
				}
				if slices.ContainsFunc(s.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "data" }) {
					t.Errorf("%s: a volume data besides the claim", s.Name)
				}
				podLabels := labels.Set(s.Spec.Template.Labels)
				if !svc.Matches(podLabels) {
					t.Errorf("%s: the Service (and so the ServiceMonitor) does not select its pods %v", s.Name, podLabels)
				}
				sel := labels.SelectorFromSet(s.Spec.Selector.MatchLabels)
				if !sel.Matches(podLabels) {
					t.Errorf("%s: its selector %v does not match its pods %v", s.Name, sel, podLabels)
				}
				for _, other := range sets {
					if other != s && sel.Matches(labels.Set(other.Spec.Template.Labels)) {
						t.Errorf("%s: its selector %v also matches the pods of %s", s.Name, sel, other.Name)
					}
				}
				pod := s.Spec.Template.Spec
				checkPod(t, pod)
				a := pod.Containers[0].Args
				for _, want := range []string{"--shard=auto", "--total-shards=" + strconv.Itoa(int(tc.shards)), "--shard.key=" + tc.key, "--storage.path=/data"} {
					if !slices.Contains(a, want) {
						t.Errorf("%s: args %q lack %s", s.Name, a, want)
					}
				}
			}
			if sms := find[*monitoringv1.ServiceMonitor](objects); len(sms) != 1 ||
				!labels.SelectorFromSet(sms[0].Spec.Selector.MatchLabels).Matches(labels.Set(services[0].Labels)) {
				t.Errorf("want one ServiceMonitor selecting the Service")
			}
			pdbs := find[*policyv1.PodDisruptionBudget](objects)
			if len(pdbs) != 1 || pdbs[0].Spec.MaxUnavailable.IntValue() != 1 {
				t.Fatalf("PodDisruptionBudgets %+v, want one letting one pod go at a time", pdbs)
			}
			pdb := labels.SelectorFromSet(pdbs[0].Spec.Selector.MatchLabels)
			for _, s := range sets {
				if !pdb.Matches(labels.Set(s.Spec.Template.Labels)) {
					t.Errorf("the PodDisruptionBudget does not cover the pods of %s", s.Name)
				}
			}
		})
	}
}

// TestChartShardsRefuseReplicaCount: replicaCount above 1 with shards is a
// mistake the chart names (the replicas are highAvailability's).
func TestChartShardsRefuseReplicaCount(t *testing.T) {
	helm := helmPath(t)
	args := []string{"template", "rel", chart, "--values", filepath.Join(chart, "ci", "ha-values.yaml"), "--set", "sharding.shards=2"}
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "replicaCount must be 1 with sharding.shards > 1 or highAvailability") {
		t.Errorf("helm %s: %v\n%s\nwant the error about replicaCount", strings.Join(args, " "), err, out)
	}
	args = []string{"template", "rel", chart, "--set", "sharding.shards=0"}
	out, err = exec.Command(helm, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/sharding/shards") {
		t.Errorf("helm %s: %v\n%s\nwant the schema's error about sharding.shards", strings.Join(args, " "), err, out)
	}
}
