// Package soak holds the ground-truth soak test (make soak): the real
// exporter binary, over HTTP, against the fake Feishu API with every fault
// switched on at random, checked at the end against the runs the fake
// really had. It is not part of make test: it runs for SOAK_MINUTES.
package soak
