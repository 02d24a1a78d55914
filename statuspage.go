package main

import (
	"bytes"
	"net/http"

	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/status"
)

// statusHandler serves /status (HTML) and /status.json from what the
// collector knows now: it polls nothing.
func (e *exporter) statusHandler(asJSON bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := status.ParseQuery(r.URL.Query().Get)
		p := status.Build(e.collector, status.Options{RateLimit: e.clientOpt.rateLimit}, q)
		var buf bytes.Buffer
		write, ctype := status.WriteHTML, "text/html; charset=utf-8"
		if asJSON {
			write, ctype = status.WriteJSON, "application/json"
		}
		if err := write(&buf, p); err != nil {
			level.Error(e.logger).Log("msg", "Cannot render the status page", "err", err)
			http.Error(w, "cannot render the status page", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	})
}
