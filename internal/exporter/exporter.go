// Package exporter is the application behind the aily_exporter command: the
// loaded configuration and its reloads, the Feishu clients, the watcher and
// collector of the sessions' runs, the state kept on disk, the HTTP
// endpoints and the --demo simulator. The command (the module's root
// package) only parses the flags, makes the logger and serves the routes.
package exporter

import "time"

const (
	// ProgramName is the exporter's name: in --version, in
	// aily_exporter_build_info and in the User-Agent of sessions_url
	// requests.
	ProgramName = "aily_exporter"
	// defaultScrapeTimeout is used when a request carries no
	// X-Prometheus-Scrape-Timeout-Seconds (curl, a browser): Prometheus'
	// own default scrape_timeout.
	defaultScrapeTimeout = 10 * time.Second
)

// SaveState writes what the watcher counted to the storage, at shutdown
// after the last scrape, so that the next run carries on from it.
func (e *Exporter) SaveState() error {
	return e.watcher.Save()
}
