package exporter

import (
	"bytes"
	"time"

	"github.com/aily-exporter/aily_exporter/internal/sharding"
)

// checkConfig is --config.check of the file at path, unsharded: the exit
// code and what it printed.
func checkConfig(path string) (code int, stdout, stderr string) {
	var out, errs bytes.Buffer
	code = CheckConfig(path, "", ClientOptions{Timeout: time.Second}, sharding.Shard{}, &out, &errs)
	return code, out.String(), errs.String()
}
