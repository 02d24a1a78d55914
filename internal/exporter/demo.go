package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/config"
)

// Demo is --demo: the fake Feishu API driven by the simulator, served on
// loopback, which the exporter then watches like any other API.
type Demo struct {
	sim     *feishufake.Simulator
	baseURL string
	// failingSession, when set, is watched under the first app though the
	// simulator does not know it: its polls fail.
	failingSession string
}

// DemoOptions are the --demo.* flags.
type DemoOptions struct {
	// Speed is how many times faster than real time the simulator runs.
	Speed float64
	// BurstInterval is how often, in simulated time, a burst of failures
	// starts; negative: never.
	BurstInterval time.Duration
	// APIAddress is where the fake Feishu API is served.
	APIAddress string
	// FailingSession, when set, is watched under the first app though the
	// simulator does not know it.
	FailingSession string
}

// StartDemo serves the simulator's fake API and control handler on
// --demo.api-address and runs the simulator until ctx is done.
func StartDemo(ctx context.Context, f DemoOptions, logger log.Logger) (*Demo, error) {
	if !(f.Speed > 0) {
		return nil, fmt.Errorf("--demo.speed %v must be above 0", f.Speed)
	}
	fake := feishufake.New(feishufake.Options{})
	sim := feishufake.NewSimulator(fake, feishufake.SimulatorOptions{
		Speed:      f.Speed,
		BurstEvery: f.BurstInterval,
		Seed:       time.Now().UnixNano(),
	})
	ln, err := net.Listen("tcp", f.APIAddress)
	if err != nil {
		return nil, fmt.Errorf("listen on --demo.api-address: %w", err)
	}
	// The fake API, and under /simulator/ the control handler (POST
	// /simulator/burst), on one listener.
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			level.Error(logger).Log("msg", "Demo simulator stopped serving", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go sim.Run(ctx)

	base := "http://" + loopback(f.APIAddress, ln.Addr())
	level.Info(logger).Log("msg", "Demo mode: watching the built-in Aily simulator, no Feishu account used",
		"simulator", base, "burst", "curl -X POST "+base+"/simulator/burst")
	return &Demo{sim: sim, baseURL: base, failingSession: f.FailingSession}, nil
}

// Config is the configuration --demo runs with: the simulator's apps and
// sessions. A reload reads them again.
func (d *Demo) Config() (*config.Config, error) {
	cfg := &config.Config{}
	for i, a := range d.sim.Apps() {
		sessions := a.Sessions
		if i == 0 && d.failingSession != "" {
			sessions = append(slices.Clip(sessions), d.failingSession)
		}
		cfg.Apps = append(cfg.Apps, &config.App{
			Name:      a.Name,
			AppID:     a.AppID,
			AppSecret: feishu.Secret(a.AppSecret),
			BaseURL:   d.baseURL,
			Sessions:  sessions,
			// The simulator's agents put the channel a run came from into
			// its metadata: the demo shows it as a label.
			MetadataLabels: []string{"channel"},
		})
	}
	return cfg, nil
}

// loopback is where the exporter (and a curl next to it) reaches the
// simulator listening at addr, asked for as address: over loopback when it
// listens on all interfaces (in a container, so that -p can publish it).
func loopback(address string, addr net.Addr) string {
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return addr.String()
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.Equal(net.IPv4zero):
		return net.JoinHostPort("127.0.0.1", port)
	case ip != nil && ip.Equal(net.IPv6unspecified):
		return net.JoinHostPort("::1", port)
	}
	return addr.String()
}
