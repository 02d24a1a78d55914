package exporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

func TestDemoOnAllInterfacesIsReachedOverLoopback(t *testing.T) {
	for _, tc := range []struct{ address, host string }{
		{"0.0.0.0:0", "127.0.0.1"},
		{":0", "127.0.0.1"},
		{"127.0.0.1:0", "127.0.0.1"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		logs := &testkit.LogBuffer{}
		logger := testkit.Logger(logs, "info")
		o := demoDefaults
		o.APIAddress = tc.address
		d, err := StartDemo(ctx, o, logger)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(d.baseURL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Hostname() != tc.host {
			t.Errorf("--demo.api-address=%s: the exporter calls %s, want host %s", tc.address, d.baseURL, tc.host)
		}
		if !strings.Contains(logs.String(), "curl -X POST http://"+tc.host+":") {
			t.Errorf("--demo.api-address=%s: the burst command does not name %s:\n%s", tc.address, tc.host, logs.String())
		}
		resp, err := http.Post(d.baseURL+"/simulator/burst", "", nil)
		if err != nil {
			t.Errorf("--demo.api-address=%s: %v", tc.address, err)
		} else {
			resp.Body.Close()
		}
		cancel()
	}
}

// demoDefaults are the --demo.* flags' defaults.
var demoDefaults = DemoOptions{Speed: 1, BurstInterval: 10 * time.Minute, APIAddress: "127.0.0.1:0"}

func TestDemoWatchesEverySimulatedSession(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testkit.LogBuffer{}
	logger := testkit.Logger(logs, "info")
	d, err := StartDemo(ctx, demoDefaults, logger)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Logger: logger, Source: d.Config, Clients: ClientOptions{Timeout: 10 * time.Second}})
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Routes(RouteOptions{TelemetryPath: "/metrics"}))
	defer srv.Close()
	body := getMetrics(t, srv.URL)

	if !hasLine(body, "aily_up 1") {
		t.Errorf("aily_up is not 1:\n%s", body)
	}
	for _, app := range d.sim.Apps() {
		for _, s := range app.Sessions {
			if !hasLine(body, sessionUp(app.Name, s, 1)) {
				t.Errorf("simulated session %s/%s is not watched", app.Name, s)
			}
		}
		if strings.Contains(body, app.AppSecret) || strings.Contains(logs.String(), app.AppSecret) {
			t.Errorf("the secret of simulated app %s is shown", app.Name)
		}
	}
	if !strings.Contains(logs.String(), "/simulator/burst") {
		t.Errorf("the simulator's address is not logged:\n%s", logs.String())
	}
}
