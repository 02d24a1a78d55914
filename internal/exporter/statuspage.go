package exporter

import (
	"bytes"
	"errors"
	"net/http"
	"time"

	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/internal/status"
)

// statusHandler serves /status (HTML) and /status.json from what the
// collector knows now: it polls nothing. A query for an app that is not
// configured is a 404 listing the apps that are.
func (e *Exporter) statusHandler(asJSON bool, telemetryPath string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := status.ParseQuery(r.URL.Query().Get)
		o := status.Options{
			RateLimit:     e.clientOpt.RateLimit,
			Started:       e.started,
			TelemetryPath: telemetryPath,
			Discovery:     e.discoveryStatus(),
		}
		if ns := e.lastScrape.Load(); ns != 0 {
			o.LastScrape = time.Unix(0, ns)
		}
		ctype := "text/html; charset=utf-8"
		if asJSON {
			ctype = "application/json"
		}
		code := http.StatusOK
		var buf bytes.Buffer
		p, err := status.Build(e.watcher, e.usage, o, q)
		var unknown *status.UnknownAppError
		switch {
		case errors.As(err, &unknown) && asJSON:
			code, err = http.StatusNotFound, status.WriteUnknownAppJSON(&buf, unknown)
		case errors.As(err, &unknown):
			code, err = http.StatusNotFound, status.WriteUnknownAppHTML(&buf, unknown, q)
		case err != nil:
		case asJSON:
			err = status.WriteJSON(&buf, p)
		default:
			err = status.WriteHTML(&buf, p)
		}
		if err != nil {
			level.Error(e.logger).Log("msg", "Cannot render the status page", "err", err)
			http.Error(w, "cannot render the status page", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_, _ = w.Write(buf.Bytes())
	})
}
