package main

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

// flags are the command line (docs/configuration.md lists them).
type flags struct {
	configFile             string
	configFileSet          bool
	configCheck            bool
	demo                   bool
	web                    *web.FlagConfig
	telemetryPath          string
	disableExporterMetrics bool
	feishuTimeout          time.Duration
	feishuPageSize         int
	feishuConcurrency      int
	feishuRateLimit        float64
	pollDailyBudget        float64
	scrapeTimeoutOffset    time.Duration
	pollMinInterval        time.Duration
	pollIdleAfter          time.Duration
	pollIdleInterval       time.Duration
	pollFullInterval       time.Duration
	storagePath            string
	storagePathSet         bool
	durationBuckets        string
	logLevel               string
	logFormat              string
	shard                  string
	totalShards            int
	shardKey               string
	demoSpeed              float64
	demoBurstInterval      time.Duration
	demoAPIAddress         string
	demoFailingSession     string
	// demoFlagsSet tells, by name, which --demo.* flags the command line
	// gives: they mean something only with --demo.
	demoFlagsSet map[string]*bool
}

// addFlags defines the command line on a; main passes kingpin.CommandLine,
// tests a fresh application.
func addFlags(a *kingpin.Application) *flags {
	f := &flags{}
	a.Flag("config.file", "the YAML configuration file (see docs/configuration.md)").
		Default("aily.yml").IsSetByUser(&f.configFileSet).StringVar(&f.configFile)
	a.Flag("config.check", "parse and validate the configuration and the --web.config.file, print what is wrong, exit 0/1").
		Default("false").BoolVar(&f.configCheck)
	a.Flag("demo", "run against the built-in Aily simulator: no credentials or config file needed").
		Default("false").BoolVar(&f.demo)
	a.Flag("web.telemetry-path", "Path under which to expose metrics.").
		Default("/metrics").StringVar(&f.telemetryPath)
	a.Flag("web.disable-exporter-metrics", "leave out the Go/process/promhttp metrics").
		Default("false").BoolVar(&f.disableExporterMetrics)
	a.Flag("feishu.timeout", "one HTTP request's limit").Default("10s").DurationVar(&f.feishuTimeout)
	a.Flag("feishu.page-size", "runs asked per page (falls back to 20 if the API rejects it with code 2700001)").
		Default("50").IntVar(&f.feishuPageSize)
	a.Flag("feishu.concurrency", "sessions listed at once").Default("4").IntVar(&f.feishuConcurrency)
	a.Flag("feishu.rate-limit", "requests per second per app, client side (burst = the same number)").
		Default("20").Float64Var(&f.feishuRateLimit)
	a.Flag("scrape.timeout-offset", "subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds").
		Default("500ms").DurationVar(&f.scrapeTimeoutOffset)
	a.Flag("poll.min-interval", "a session polled less than this ago is not polled again (HA Prometheus pairs, concurrent scrapes; set it near the scrape interval); also how often a session with runs in flight is polled; 0: none, every scrape may poll").
		Default("5s").DurationVar(&f.pollMinInterval)
	a.Flag("poll.idle-after", "a session with no run in flight and no new run for this long is idle").
		Default("10m").DurationVar(&f.pollIdleAfter)
	a.Flag("poll.idle-interval", "how often an idle session is polled; the cap of a failing session's back-off").
		Default("5m").DurationVar(&f.pollIdleInterval)
	a.Flag("poll.daily-budget", "list and get-run requests each app may make a day on average, spent where they buy the most freshness (see docs/polling.md); an app's daily_budget overrides it; 0: no average cap, only --feishu.rate-limit").
		Default("100000").Float64Var(&f.pollDailyBudget)
	a.Flag("poll.full-interval", "how often a session is listed in full, as a safety net for incremental listing (see docs/polling.md)").
		Default("6h").DurationVar(&f.pollFullInterval)
	a.Flag("storage.path", "where the exporter keeps its state across restarts (counting state, counters, listing positions); empty: no state. --demo keeps none unless this is given").
		Default("data/").IsSetByUser(&f.storagePathSet).StringVar(&f.storagePath)
	a.Flag("collector.duration-buckets", "classic buckets of the duration histograms, in seconds").
		Default("1,2.5,5,10,20,30,60,120,300,600,1800,3600").StringVar(&f.durationBuckets)
	a.Flag("shard", "this exporter's shard among --total-shards: a number from 0, or auto for the trailing -N of the host name (a StatefulSet pod's, as aily-exporter-2); see docs/sharding.md").
		Default("0").StringVar(&f.shard)
	a.Flag("total-shards", "how many shards share the configuration; each watches the apps (or sessions, --shard.key) whose jump hash is its --shard; 1: no sharding").
		Default("1").IntVar(&f.totalShards)
	a.Flag("shard.key", "what the shards share out: app (each app to one shard) or session (each session to one shard; each shard polls at the app's rate limit and daily budget divided by --total-shards)").
		Default("app").EnumVar(&f.shardKey, "app", "session")
	a.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").
		Default("info").EnumVar(&f.logLevel, "debug", "info", "warn", "error")
	a.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").
		Default("logfmt").EnumVar(&f.logFormat, "logfmt", "json")
	f.demoFlagsSet = map[string]*bool{}
	demoFlag := func(name, help string) *kingpin.FlagClause {
		set := new(bool)
		f.demoFlagsSet[name] = set
		return a.Flag(name, help).Hidden().IsSetByUser(set)
	}
	demoFlag("demo.speed", "how many times faster than real time the demo simulator runs").
		Default("1").Float64Var(&f.demoSpeed)
	demoFlag("demo.burst-interval", "how often (in simulated time) the demo simulator starts a burst of failures; negative: never").
		Default("10m").DurationVar(&f.demoBurstInterval)
	demoFlag("demo.api-address", "where the demo simulator serves its fake Feishu API and POST /simulator/burst").
		Default("127.0.0.1:0").StringVar(&f.demoAPIAddress)
	demoFlag("demo.failing-session", "a session ID the demo watches under its first app but the simulator does not know, so that its polls fail (a failing session to look at on /status)").
		Default("").StringVar(&f.demoFailingSession)
	f.web = kingpinflag.AddFlags(a, ":9851")
	return f
}

// checkFlags rejects numeric flags out of range, which would otherwise
// silently fall back to a default deeper down, a --web.telemetry-path the
// HTTP server cannot serve, and --demo.* flags without --demo, which would
// otherwise be silently ignored.
func checkFlags(f *flags) error {
	if err := checkTelemetryPath(f.telemetryPath); err != nil {
		return err
	}
	if !f.demo {
		var given []string
		for name, set := range f.demoFlagsSet {
			if *set {
				given = append(given, "--"+name)
			}
		}
		if len(given) > 0 {
			slices.Sort(given)
			return fmt.Errorf("%s given without --demo: the --demo.* flags configure the demo simulator only; add --demo, or leave them out",
				strings.Join(given, ", "))
		}
	}
	switch {
	case f.feishuTimeout <= 0:
		return fmt.Errorf("--feishu.timeout %v must be above 0", f.feishuTimeout)
	case f.feishuPageSize < 1:
		return fmt.Errorf("--feishu.page-size %d must be at least 1", f.feishuPageSize)
	case f.feishuConcurrency < 1:
		return fmt.Errorf("--feishu.concurrency %d must be at least 1", f.feishuConcurrency)
	case !(f.feishuRateLimit >= 0) || math.IsInf(f.feishuRateLimit, 0):
		return fmt.Errorf("--feishu.rate-limit %v must be a number ≥ 0 (0: no limit)", f.feishuRateLimit)
	case !(f.pollDailyBudget >= 0) || math.IsInf(f.pollDailyBudget, 0):
		return fmt.Errorf("--poll.daily-budget %v must be a number of requests a day ≥ 0 (0: no average cap)", f.pollDailyBudget)
	case f.scrapeTimeoutOffset < 0:
		return fmt.Errorf("--scrape.timeout-offset %v must not be negative", f.scrapeTimeoutOffset)
	case f.pollMinInterval < 0:
		return fmt.Errorf("--poll.min-interval %v must not be negative", f.pollMinInterval)
	case f.pollIdleAfter <= 0:
		return fmt.Errorf("--poll.idle-after %v must be above 0", f.pollIdleAfter)
	case f.pollIdleInterval <= 0:
		return fmt.Errorf("--poll.idle-interval %v must be above 0", f.pollIdleInterval)
	case f.pollFullInterval <= 0:
		return fmt.Errorf("--poll.full-interval %v must be above 0", f.pollFullInterval)
	}
	return nil
}

// parseBuckets parses --collector.duration-buckets: comma-separated seconds,
// strictly increasing.
func parseBuckets(s string) ([]float64, error) {
	const flag = "--collector.duration-buckets"
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%s: at least one bucket is required", flag)
	}
	var out []float64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		v, err := strconv.ParseFloat(part, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: %q is not a number of seconds", flag, part)
		}
		if v < 0 {
			return nil, fmt.Errorf("%s: %v is negative; durations are never below 0", flag, v)
		}
		if n := len(out); n > 0 && v <= out[n-1] {
			return nil, fmt.Errorf("%s: buckets must be increasing, but %v follows %v", flag, v, out[n-1])
		}
		out = append(out, v)
	}
	return out, nil
}

// parseFlags parses args into a's flags. kingpin's error for a value that
// does not parse names neither the flag nor the value
// (`strconv.ParseFloat: parsing "abc": invalid syntax`); parseFlags finds the
// flag and says which.
func parseFlags(a *kingpin.Application, args []string) error {
	_, err := a.Parse(args)
	if err == nil {
		return nil
	}
	ctx, cerr := a.ParseContext(args)
	if cerr != nil {
		return err // a syntax error (unknown flag, missing value): kingpin names the flag
	}
	for _, el := range ctx.Elements {
		fc, ok := el.Clause.(*kingpin.FlagClause)
		if !ok || el.Value == nil {
			continue
		}
		// Setting the values again, in kingpin's order, reproduces its
		// error at the flag that failed. What they are left holding does
		// not matter: the program exits.
		m := fc.Model()
		if serr := m.Value.Set(*el.Value); serr != nil && serr.Error() == err.Error() {
			return fmt.Errorf("--%s: %q is not valid: %w", m.Name, *el.Value, err)
		}
	}
	return err
}

// checkTelemetryPath rejects a --web.telemetry-path that http.ServeMux
// would refuse (it panics) or that would shadow another endpoint.
func checkTelemetryPath(p string) error {
	const flag = "--web.telemetry-path"
	clean := path.Clean(p)
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf(`%s %q must start with "/", such as /metrics`, flag, p)
	case strings.ContainsAny(p, "{}?#") || strings.ContainsFunc(p, func(r rune) bool { return r == ' ' || !unicode.IsPrint(r) }) ||
		(p != clean && p != clean+"/"):
		return fmt.Errorf("%s %q must be a plain path, such as /metrics: no spaces, '{', '}', '?' or '#', no '.' or '..' segments, no doubled '/'",
			flag, p)
	case p == "/config" || p == "/status" || p == "/status.json" || strings.HasPrefix(p, "/-/"):
		return fmt.Errorf("%s %q is taken by another endpoint: /config, /status, /status.json and the paths under /-/ are the exporter's own (see the README's Endpoints)",
			flag, p)
	}
	return nil
}
