// Package compose holds the docker compose stack of the demo (compose.yaml);
// no container engine runs here, so its tests check the files' structure:
// pinned images, mounts of files that exist, the provisioning Grafana reads.
package compose

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func decodeStrict(t *testing.T, name string, v any) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

type service struct {
	Build       string            `yaml:"build"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   []string          `yaml:"depends_on"`
}

// pinned is an image with an exact version: no latest, no bare major.
var pinned = regexp.MustCompile(`^[a-z0-9./_-]+:v?[0-9]+\.[0-9]+\.[0-9]+$`)

// mount returns the container path where a service mounts host path src.
func mount(s service, src string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if parts[0] == src {
			return parts[1]
		}
	}
	return ""
}

func TestComposeStack(t *testing.T) {
	var c struct {
		Name     string             `yaml:"name"`
		Services map[string]service `yaml:"services"`
	}
	decodeStrict(t, "compose.yaml", &c)
	for _, name := range []string{"exporter", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no service %s", name)
		}
	}
	for name, s := range c.Services {
		if s.Build == "" && !pinned.MatchString(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
		}
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if _, err := os.Stat(src); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
			if !strings.HasSuffix(v, ":ro") {
				t.Errorf("service %s: mount %s is not read-only", name, v)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond the host's loopback", name, p)
			}
		}
	}
	exporter := c.Services["exporter"]
	if exporter.Build != "../.." || !slices.Contains(exporter.Command, "--demo") {
		t.Errorf("exporter %+v, want the repository's Dockerfile in --demo mode", exporter)
	}

	// Prometheus reads its configuration at the same place, relative to the
	// rules, as promtool check config does in make test.
	prom := c.Services["prometheus"]
	config := mount(prom, "./prometheus/prometheus.yml")
	if !slices.Contains(prom.Command, "--config.file="+config) {
		t.Errorf("prometheus command %q does not read its mounted configuration %s", prom.Command, config)
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &pc); err != nil {
		t.Fatal(err)
	}
	for _, r := range pc.RuleFiles {
		inContainer := filepath.Clean(filepath.Join(filepath.Dir(config), r))
		if mount(prom, "../../dashboards/alerts.yml") != inContainer {
			t.Errorf("rule file %s resolves to %s in the container, where nothing is mounted", r, inContainer)
		}
	}
	if len(pc.ScrapeConfigs) != 1 || !strings.HasPrefix(pc.ScrapeConfigs[0].JobName, "aily") ||
		pc.ScrapeConfigs[0].StaticConfigs[0].Targets[0] != "exporter:9851" {
		t.Errorf("scrape configs %+v, want job aily* scraping exporter:9851", pc.ScrapeConfigs)
	}

	// Grafana: the data source, and the dashboard where the provider reads.
	grafana := c.Services["grafana"]
	if mount(grafana, "./grafana/provisioning") != "/etc/grafana/provisioning" {
		t.Errorf("grafana does not mount the provisioning at /etc/grafana/provisioning: %q", grafana.Volumes)
	}
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Type      string         `yaml:"type"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeStrict(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" ||
		ds.Datasources[0].URL != "http://prometheus:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("datasources %+v, want the compose Prometheus as the default data source", ds)
	}
	var dash struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name            string `yaml:"name"`
			Type            string `yaml:"type"`
			DisableDeletion bool   `yaml:"disableDeletion"`
			AllowUIUpdates  bool   `yaml:"allowUiUpdates"`
			Options         struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeStrict(t, "grafana/provisioning/dashboards/aily.yml", &dash)
	if dash.APIVersion != 1 || len(dash.Providers) != 1 || dash.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v, want one file provider", dash)
	}
	at := mount(grafana, "../../dashboards/aily.json")
	if filepath.Dir(at) != dash.Providers[0].Options.Path {
		t.Errorf("aily.json is mounted at %s, the provider reads %s", at, dash.Providers[0].Options.Path)
	}
	if home := grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != at {
		t.Errorf("home dashboard %s, want the mounted aily.json %s", home, at)
	}
}
