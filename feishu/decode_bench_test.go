package feishu

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// benchPageBody is a list-runs body of n runs in the documented wire form,
// every optional field present on most runs, as a busy session returns.
func benchPageBody(n int) []byte {
	statuses := []string{"COMPLETED", "FAILED", "IN_PROGRESS", "QUEUED", "CANCELLED"}
	runs := make([]string, n)
	for i := range runs {
		created := int64(1711975665710) + int64(i)*1000
		st := statuses[i%len(statuses)]
		r := fmt.Sprintf(`{"id":"run_%010d","created_at":"%d","app_id":"spring_test__c","session_id":"session_4dfunz7sp1g8m","status":%q`,
			i, created, st)
		if st != "QUEUED" {
			r += fmt.Sprintf(`,"started_at":"%d"`, created+1000)
		}
		if st != "IN_PROGRESS" && st != "QUEUED" {
			r += fmt.Sprintf(`,"ended_at":"%d"`, created+5000)
		}
		if st == "FAILED" {
			r += `,"error":{"code":"sp_ec_sm_900101","message":"技能不存在或已删除"}`
		}
		runs[i] = r + `,"metadata":"{}"}`
	}
	return []byte(`{"code":0,"msg":"success","data":{"runs":[` + strings.Join(runs, ",") +
		`],"page_token":"YWlseS1ydW5zLXYxfHNlc3Npb25fNGRmdW56N3NwMWc4bXwxMDB8MQ==","has_more":true}}`)
}

// BenchmarkDecodeRunsPage decodes a 100-run page body, as the client does
// for every page it fetches, and reports the cost per run.
func BenchmarkDecodeRunsPage(b *testing.B) {
	const n = 100
	body := benchPageBody(n)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		page, err := decodeRunsPage(body, "session_4dfunz7sp1g8m", n, time.Now())
		if err != nil || len(page.runs) != n || len(page.malformed) != 0 {
			b.Fatalf("decode: %d runs, %d malformed, %v", len(page.runs), len(page.malformed), err)
		}
	}
	runtime.ReadMemStats(&after)
	runs := float64(b.N) * n
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/runs, "ns/run")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/runs, "B/run")
}
