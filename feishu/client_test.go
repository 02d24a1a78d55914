package feishu

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDefaultTransportKeepsMaxConcurrencyIdleConnectionsPerHost(t *testing.T) {
	for _, tc := range []struct {
		name           string
		maxConcurrency int
		want           int
	}{
		{"default", 0, DefaultMaxConcurrency},
		{"one", 1, 1},
		{"many", 32, 32},
		{"more than DefaultTransport's MaxIdleConns", 500, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(Config{AppID: "cli_x", AppSecret: "s", MaxConcurrency: tc.maxConcurrency})
			if err != nil {
				t.Fatal(err)
			}
			tr, ok := c.http.Transport.(*http.Transport)
			if !ok {
				t.Fatalf("transport is %T, want *http.Transport", c.http.Transport)
			}
			if tr == http.DefaultTransport {
				t.Fatal("the client changes http.DefaultTransport itself")
			}
			if tr.MaxIdleConnsPerHost != tc.want || tr.MaxIdleConns < tc.want {
				t.Errorf("MaxIdleConnsPerHost = %d, MaxIdleConns = %d; want %d and at least that", tr.MaxIdleConnsPerHost, tr.MaxIdleConns, tc.want)
			}
			if c.http.Timeout != DefaultTimeout || tr.Proxy == nil {
				t.Errorf("timeout %v, proxy set %v: want DefaultTransport's settings kept and a %v timeout", c.http.Timeout, tr.Proxy != nil, DefaultTimeout)
			}
		})
	}
	if got := http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost; got != 0 {
		t.Errorf("http.DefaultTransport.MaxIdleConnsPerHost = %d, want it untouched", got)
	}
}

func TestGivenHTTPClientIsUsedAsItIs(t *testing.T) {
	hc := &http.Client{}
	c, err := NewClient(Config{AppID: "cli_x", AppSecret: "s", HTTPClient: hc, MaxConcurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if c.http != hc || hc.Transport != nil {
		t.Error("the given HTTP client was replaced or changed")
	}
}

func TestNegativeMaxConcurrencyIsRejected(t *testing.T) {
	_, err := NewClient(Config{AppID: "cli_x", AppSecret: "s", MaxConcurrency: -1})
	if err == nil || !strings.Contains(err.Error(), "max concurrency -1 is negative") {
		t.Errorf("err = %v, want a negative max concurrency error", err)
	}
}

func TestTimeoutSetsTheDefaultClientsTimeout(t *testing.T) {
	c, err := NewClient(Config{AppID: "cli_x", AppSecret: "s", Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if c.http.Timeout != 3*time.Second {
		t.Errorf("timeout %v, want 3s", c.http.Timeout)
	}
}

func TestSleepContext(t *testing.T) {
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("sleep 0: %v", err)
	}
	if err := Sleep(context.Background(), time.Nanosecond); err != nil {
		t.Errorf("sleep 1ns: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep on a cancelled context = %v, want context.Canceled", err)
	}
}
