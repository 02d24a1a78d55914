// Package fakeapi holds the test helpers around the Feishu client and its
// fake that the tests of several packages would otherwise copy: a client
// that fails the test instead of returning an error, a run as the fake
// serves it, and a listing captured from the fake to serve at next to no
// cost in benchmarks.
package fakeapi

import (
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// NewClient returns the client of cfg after the edits, or fails the test.
func NewClient(tb testing.TB, cfg feishu.Config, edit ...func(*feishu.Config)) *feishu.Client {
	tb.Helper()
	for _, f := range edit {
		f(&cfg)
	}
	c, err := feishu.NewClient(cfg)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	return c
}

// Run builds a run of app "spring_test__c" as the API reports one in status
// st: started a second after created unless queued, ended 5 s after created
// if final, and carrying the error of a missing skill if failed.
func Run(session, id string, created time.Time, st feishu.RunStatus) feishu.Run {
	r := feishu.Run{ID: id, AppID: "spring_test__c", SessionID: session, Status: st, CreatedAt: created, Metadata: "{}"}
	if st != feishu.StatusQueued {
		r.StartedAt = created.Add(time.Second)
	}
	if st.Final() {
		r.EndedAt = created.Add(5 * time.Second)
	}
	if st == feishu.StatusFailed {
		r.Error = &feishu.RunError{Code: "sp_ec_sm_900101", Message: "技能不存在或已删除"}
	}
	return r
}
