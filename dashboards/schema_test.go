package dashboards

import (
	"errors"
	"os"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	grafana "github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// TestDashboardMatchesGrafanaSchema decodes aily.json with the types Grafana
// generates from its own schema (grafana-foundation-sdk), strictly: a field
// the schema does not know, or a panel option left for Grafana to fill with
// its default, fails the test. Validate then checks what the schema requires.
func TestDashboardMatchesGrafanaSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins() // the panels' and queries' own schemas
	b, err := os.ReadFile("aily.json")
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 aily.json is a classic dashboard (schema v1), which dashboardv2 does not describe
	var d grafana.Dashboard
	if err := schemaErr(d.UnmarshalJSONStrict(b)); err != nil {
		t.Errorf("aily.json against Grafana's dashboard schema (strict):\n%v", err)
	}
	if err := schemaErr(d.Validate()); err != nil {
		t.Errorf("aily.json: %v", err)
	}
}

// schemaErr is err, or nil when err is an empty cog.BuildErrors: the SDK
// returns its error list as an error even when the list is empty.
func schemaErr(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}
