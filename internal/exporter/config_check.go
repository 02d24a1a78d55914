package exporter

import (
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/sharding"
)

// CheckConfig is --config.check: it loads the file, builds every app's client
// and sessions_url client (which makes no request: a TLS file that is not
// there is found, a URL that does not answer is not), checks the
// --web.config.file if one is given (TLS certificates, basic auth users),
// and prints the first problem or "config OK", after any warnings; when
// sharded, then what this shard owns.
func CheckConfig(path, webConfig string, clients ClientOptions, shard sharding.Shard, stdout, stderr io.Writer) int {
	cfg, err := LoadShared(path, shard)
	if err == nil {
		for _, app := range cfg.Apps {
			if _, err = clients.newClient(app, nil); err != nil {
				break
			}
			if app.SessionsURL != "" {
				if _, err = newSource(app, 0, nil); err != nil {
					err = fmt.Errorf("app %q: %w", app.Name, err)
					break
				}
			}
		}
	}
	if err == nil {
		if werr := web.Validate(webConfig); werr != nil {
			err = fmt.Errorf("--web.config.file %s: %w", webConfig, werr)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintln(stdout, "config OK")
	if shard.Sharded() {
		printOwned(stdout, cfg, shard)
	}
	return 0
}

// printOwned tells, for --config.check, which apps and sessions shard
// watches. The sessions a sessions_url lists are not fetched: they are
// shared out the same way once they are.
func printOwned(w io.Writer, cfg *config.Config, shard sharding.Shard) {
	fmt.Fprintf(w, "shard %d of %d (--shard.key=%s) owns:\n", shard.Ordinal, shard.Total, shard.Key)
	owned := 0
	for _, app := range cfg.Apps {
		if !shard.OwnsApp(app.Name) {
			continue
		}
		owned++
		all := app.AllSessions()
		mine := ownedSessions(shard, app.Name, all)
		line := fmt.Sprintf("  app %s: %d of %d sessions", app.Name, len(mine), len(all))
		if app.SessionsURL != "" {
			line += ", and its share of those its sessions_url lists"
		}
		if len(mine) > 0 && len(mine) <= 20 {
			line += ": " + strings.Join(mine, ", ")
		}
		fmt.Fprintln(w, line)
	}
	if owned == 0 {
		fmt.Fprintf(w, "  none of the %d apps\n", len(cfg.Apps))
	}
}

// LoadShared loads the configuration file as shard sees it: with session
// keys, each app's size (per_session's default, its warning) is a shard's
// share of its sessions.
func LoadShared(path string, shard sharding.Shard) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil && shard.Key == sharding.KeySession && shard.Sharded() {
		cfg.ShareSessions(shard.Total)
	}
	return cfg, err
}
