package feishufake

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// The paths the fake serves.
const (
	TokenPath       = "/open-apis/auth/v3/tenant_access_token/internal"
	listRunsPrefix  = "/open-apis/aily/v1/sessions/"
	listRunsSuffix  = "/runs"
	contentTypeJSON = "application/json; charset=utf-8"
)

// Messages of the real API (feishu-aily-api.md §4.2, list-runs.md).
const (
	msgTokenMissing   = "Missing access token for authorization. Please make a request with token attached."
	msgTokenInvalid   = "Invalid access token for authorization. Please make a request with token attached"
	msgTokenMalformed = "Invalid token: must start with t-/u-"
	msgParamInvalid   = "param is invalid"
	msgRateLimited    = "request trigger frequency limit"
	msgTokenParam     = "invalid param"
)

// rateLimitPerSecond is the x-ogw-ratelimit-limit header the rate-limit
// faults send: the documented read tier of the neighbouring aily endpoints.
const rateLimitPerSecond = 50

// ListRunsPath returns the list endpoint's path for a session.
func ListRunsPath(sessionID string) string {
	return listRunsPrefix + sessionID + listRunsSuffix
}

// GetRunPath returns the get-run endpoint's path for a run of a session.
func GetRunPath(sessionID, runID string) string {
	return listRunsPrefix + sessionID + listRunsSuffix + "/" + runID
}

// ServeHTTP answers the token, list-runs and get-run endpoints; anything
// else, a wrong method included, is a plain-text 404 as the real gateway
// sends.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Tt-Logid", f.nextLogID())
	switch {
	case r.URL.Path == TokenPath && r.Method == http.MethodPost:
		f.serveToken(w, r)
		return
	case r.Method == http.MethodGet:
		if rest, ok := strings.CutPrefix(r.URL.Path, listRunsPrefix); ok {
			// rest is "<session>/runs" or "<session>/runs/<run>".
			parts := strings.Split(rest, "/")
			if len(parts) >= 2 && len(parts) <= 3 && parts[0] != "" && "/"+parts[1] == listRunsSuffix {
				switch {
				case len(parts) == 2:
					f.serveListRuns(w, r, parts[0])
					return
				case parts[2] != "":
					f.serveGetRun(w, r, parts[0], parts[2])
					return
				}
			}
		}
	}
	writeNotFoundText(w)
}

func (f *Fake) nextLogID() string {
	f.mu.Lock()
	f.logSeq++
	seq := f.logSeq
	f.mu.Unlock()
	// Real log IDs are a timestamp followed by hex digits.
	return fmt.Sprintf("%s%s%010X", f.now().UTC().Format("20060102150405"), f.logIDPrefix, seq)
}

type tokenRequest struct {
	AppID     string `json:"app_id"`
	AppSecret string `json:"app_secret"`
}

type tokenResponse struct {
	Code              int    `json:"code"`
	Msg               string `json:"msg"`
	TenantAccessToken string `json:"tenant_access_token,omitempty"`
	Expire            int    `json:"expire,omitempty"`
}

func (f *Fake) serveToken(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}

	f.mu.Lock()
	f.requests[string(feishu.EndpointTenantToken)]++
	h := f.takeFaultsLocked(feishu.EndpointTenantToken, req.AppID, "")
	f.mu.Unlock()

	if feishu.Sleep(r.Context(), h.delay) != nil {
		return
	}
	if h.answer != nil && h.answer.Kind == EchoCredentials {
		writeEcho(w, h.answer, feishu.CodeTokenInvalidParam, http.StatusOK, "invalid param, request body: "+string(body))
		return
	}
	if h.answer != nil && h.answer.Kind != MalformedJSON {
		f.writeFault(w, h.answer, false)
		return
	}

	// The real endpoint answers bad credentials, and a body it cannot read,
	// with HTTP 200 and code 10003.
	resp := tokenResponse{Code: feishu.CodeTokenInvalidParam, Msg: msgTokenParam}
	f.mu.Lock()
	if secret, ok := f.apps[req.AppID]; ok && err == nil && req.AppID != "" && secret == req.AppSecret {
		tok, left := f.issueTokenLocked(req.AppID, f.now())
		resp = tokenResponse{Code: 0, Msg: "ok", TenantAccessToken: tok, Expire: int(left / time.Second)}
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, mustMarshal(resp), h.answer != nil)
}

// Wire form of the list endpoint, kept apart from the client's types so that
// a mistake in one is not copied into the other.
type listRunsResponse struct {
	Code int           `json:"code"`
	Msg  string        `json:"msg"`
	Data *listRunsData `json:"data,omitempty"`
}

type listRunsData struct {
	Runs      []wireRun `json:"runs"`
	PageToken string    `json:"page_token,omitempty"`
	HasMore   bool      `json:"has_more"`
}

type wireRun struct {
	ID        string        `json:"id"`
	CreatedAt string        `json:"created_at"`
	AppID     string        `json:"app_id"`
	SessionID string        `json:"session_id"`
	Status    string        `json:"status"`
	StartedAt string        `json:"started_at,omitempty"`
	EndedAt   string        `json:"ended_at,omitempty"`
	Error     *wireRunError `json:"error,omitempty"`
	Metadata  string        `json:"metadata,omitempty"`
}

type wireRunError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorResponse is the body of a failed call: the envelope, and the
// error.log_id/troubleshooter a probe saw on real auth errors.
type errorResponse struct {
	Code  int        `json:"code"`
	Msg   string     `json:"msg"`
	Error *errorInfo `json:"error,omitempty"`
}

type errorInfo struct {
	LogID          string `json:"log_id"`
	Troubleshooter string `json:"troubleshooter"`
}

func toWire(r feishu.Run) wireRun {
	w := wireRun{
		ID:        r.ID,
		CreatedAt: feishu.FormatMillis(r.CreatedAt),
		AppID:     r.AppID,
		SessionID: r.SessionID,
		Status:    string(r.Status),
		StartedAt: feishu.FormatMillis(r.StartedAt),
		EndedAt:   feishu.FormatMillis(r.EndedAt),
		Metadata:  r.Metadata,
	}
	if r.Error != nil {
		w.Error = &wireRunError{Code: r.Error.Code, Message: r.Error.Message}
	}
	return w
}

// page is one computed page of a listing, or the error answering it.
type page struct {
	status int
	body   []byte
	hookAt int // page number to report to the OnPage hook; -1 for none
}

// admitRunRequest does what a runs request meets before its answer: it is
// counted, its faults are taken, its delay waited, and a fault that answers
// it is written. It returns the request's token, and false when the request
// is answered (or its caller gone).
func (f *Fake) admitRunRequest(w http.ResponseWriter, r *http.Request, ep feishu.Endpoint, sessionID string) (tok string, hasBearer bool, h hit, ok bool) {
	tok, hasBearer = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)

	f.mu.Lock()
	f.requests[string(ep)]++
	// The app scope of a fault follows the token even when it has expired:
	// the gateway throttles per app before it checks the token.
	appID := f.tokens[tok].appID
	h = f.takeFaultsLocked(ep, appID, sessionID)
	f.mu.Unlock()

	if feishu.Sleep(r.Context(), f.latency+h.delay) != nil {
		return tok, hasBearer, h, false
	}
	if h.answer != nil && h.answer.Kind == EchoCredentials {
		writeEcho(w, h.answer, cmp.Or(h.answer.Code, feishu.CodeTokenInvalid), http.StatusBadRequest,
			msgTokenInvalid+", Authorization: "+r.Header.Get("Authorization"))
		return tok, hasBearer, h, false
	}
	if h.answer != nil && h.answer.Kind != MalformedJSON {
		f.writeFault(w, h.answer, true)
		return tok, hasBearer, h, false
	}
	return tok, hasBearer, h, true
}

func (f *Fake) serveListRuns(w http.ResponseWriter, r *http.Request, sessionID string) {
	tok, hasBearer, h, ok := f.admitRunRequest(w, r, feishu.EndpointListRuns, sessionID)
	if !ok {
		return
	}
	p := f.listPage(w, r, sessionID, tok, hasBearer, h.repeatToken)
	if p.hookAt >= 0 {
		f.mu.Lock()
		hook := f.onPage
		f.mu.Unlock()
		if hook != nil {
			hook(sessionID, p.hookAt)
		}
	}
	writeJSON(w, p.status, p.body, h.answer != nil)
}

// listPage checks the request and computes its page from the session's runs
// as they are now.
func (f *Fake) listPage(w http.ResponseWriter, r *http.Request, sessionID, tok string, hasBearer bool, repeatToken bool) page {
	logID := w.Header().Get("X-Tt-Logid")
	fail := func(code int, msg string) page {
		return page{status: http.StatusBadRequest, body: errorBody(code, msg, logID), hookAt: -1}
	}
	now := f.now()

	f.mu.Lock()
	defer f.mu.Unlock()

	if code, msg := f.authLocked(tok, hasBearer, now); code != 0 {
		return fail(code, msg)
	}
	f.vanishLocked(sessionID, now)
	runs, known := f.sortedRunsLocked(sessionID)
	if !known {
		return fail(feishu.CodeParamInvalid, msgParamInvalid)
	}
	q := r.URL.Query()
	size := DefaultPageSize
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > f.maxPageSize {
			return fail(feishu.CodeParamInvalid, msgParamInvalid)
		}
		size = n
	}
	offset, pageNo := 0, 0
	if s := q.Get("page_token"); s != "" {
		var ok bool
		offset, pageNo, ok = decodePageToken(s, sessionID)
		if !ok {
			return fail(feishu.CodeParamInvalid, msgParamInvalid)
		}
	}

	start := min(offset, len(runs))
	end := min(start+size, len(runs))
	data := &listRunsData{Runs: make([]wireRun, 0, end-start), HasMore: end < len(runs)}
	for _, run := range runs[start:end] {
		data.Runs = append(data.Runs, toWire(run))
		if f.vanishAfter > 0 && run.Status.Final() {
			f.listed[runKey{sessionID, run.ID}]++
		}
	}
	switch {
	case repeatToken:
		data.HasMore = true
		data.PageToken = encodePageToken(sessionID, size, 1)
	case data.HasMore:
		data.PageToken = encodePageToken(sessionID, end, pageNo+1)
	}
	body := mustMarshal(listRunsResponse{Code: 0, Msg: "success", Data: data})
	return page{status: http.StatusOK, body: body, hookAt: pageNo}
}

// authLocked checks a Bearer token as the real gateway does, returning the
// code and message of its refusal, or 0 when the token is good.
func (f *Fake) authLocked(tok string, hasBearer bool, now time.Time) (int, string) {
	switch {
	case !hasBearer || tok == "":
		return feishu.CodeTokenMissing, msgTokenMissing
	case f.userTokens[tok]:
	case strings.HasPrefix(tok, "t-"):
		a, ok := f.tokens[tok]
		if !ok || !now.Before(a.expires) {
			return feishu.CodeTokenInvalid, msgTokenInvalid
		}
	case strings.HasPrefix(tok, "u-"):
		return feishu.CodeTokenUserInvalid, msgTokenInvalid
	default:
		return feishu.CodeTokenMalformed, msgTokenMalformed
	}
	return 0, ""
}

// getRunResponse is the get-run body: the run in data.run.
type getRunResponse struct {
	Code int         `json:"code"`
	Msg  string      `json:"msg"`
	Data *getRunData `json:"data,omitempty"`
}

type getRunData struct {
	Run wireRun `json:"run"`
}

// serveGetRun answers GET /open-apis/aily/v1/sessions/:id/runs/:run_id with
// the run in data.run, checking the token and applying faults as the list
// endpoint does. An unknown session, or a run the session does not have, is
// HTTP 400 code 2700001 "param is invalid": the real answer is undocumented,
// and that is the only error the aily runs pages document.
func (f *Fake) serveGetRun(w http.ResponseWriter, r *http.Request, sessionID, runID string) {
	tok, hasBearer, h, ok := f.admitRunRequest(w, r, feishu.EndpointGetRun, sessionID)
	if !ok {
		return
	}

	logID := w.Header().Get("X-Tt-Logid")
	now := f.now()
	status, body := func() (int, []byte) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if code, msg := f.authLocked(tok, hasBearer, now); code != 0 {
			return http.StatusBadRequest, errorBody(code, msg, logID)
		}
		run, ok := f.sessions[sessionID][runID]
		if !ok {
			return http.StatusBadRequest, errorBody(feishu.CodeParamInvalid, msgParamInvalid, logID)
		}
		return http.StatusOK, mustMarshal(getRunResponse{Code: 0, Msg: "success", Data: &getRunData{Run: toWire(run)}})
	}()
	writeJSON(w, status, body, h.answer != nil)
}

// writeFault answers a request with a fault's response.
func (f *Fake) writeFault(w http.ResponseWriter, fl *Fault, withErrorInfo bool) {
	logID := w.Header().Get("X-Tt-Logid")
	if !withErrorInfo {
		logID = ""
	}
	switch fl.Kind {
	case RateLimit429, RateLimit400:
		w.Header().Set("x-ogw-ratelimit-limit", strconv.Itoa(rateLimitPerSecond))
		switch {
		case fl.ResetSeconds == 0:
			w.Header().Set("x-ogw-ratelimit-reset", "1")
		case fl.ResetSeconds > 0:
			w.Header().Set("x-ogw-ratelimit-reset", strconv.Itoa(fl.ResetSeconds))
		}
		status := http.StatusTooManyRequests
		if fl.Kind == RateLimit400 {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, errorBody(feishu.CodeRateLimited, msgRateLimited, logID), false)
	case InvalidToken:
		writeJSON(w, http.StatusBadRequest, errorBody(feishu.CodeTokenInvalid, msgTokenInvalid, logID), false)
	case TokenEndpointFailure:
		writeJSON(w, http.StatusOK, mustMarshal(tokenResponse{Code: feishu.CodeTokenInvalidParam, Msg: msgTokenParam}), false)
	case ServerError:
		status := fl.HTTPStatus
		if status == 0 {
			status = http.StatusInternalServerError
		}
		var body []byte
		if !fl.EmptyBody {
			// The real 5xx body is undocumented; this one is invented.
			body = errorBody(status, http.StatusText(status), logID)
		}
		writeJSON(w, status, body, false)
	default: // NotFoundText, and kinds this version does not know
		writeNotFoundText(w)
	}
}

// writeEcho answers an EchoCredentials fault: echo is the text quoting the
// request's credentials; code and jsonStatus are those of the EchoJSON form.
func writeEcho(w http.ResponseWriter, fl *Fault, code, jsonStatus int, echo string) {
	switch fl.Echo {
	case EchoText:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "400 bad request: "+echo+"\n")
	case EchoHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1>\n<pre>"+
			html.EscapeString(echo)+"</pre></body></html>\n")
	default:
		writeJSON(w, jsonStatus, errorBody(code, echo, ""), false)
	}
}

func errorBody(code int, msg, logID string) []byte {
	resp := errorResponse{Code: code, Msg: msg}
	if logID != "" {
		resp.Error = &errorInfo{
			LogID:          logID,
			Troubleshooter: "排查建议查看(Troubleshooting suggestions): https://open.feishu.cn/search?log_id=" + logID,
		}
	}
	return mustMarshal(resp)
}

// writeJSON writes a JSON answer; truncate cuts the body in half (the
// MalformedJSON fault, which always answers HTTP 200).
func writeJSON(w http.ResponseWriter, status int, body []byte, truncate bool) {
	if truncate {
		status = http.StatusOK
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeNotFoundText(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, "404 page not found\n")
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the fake's own wire structs are marshalled; they always can be.
		panic(fmt.Sprintf("feishufake: marshal %T: %v", v, err))
	}
	return b
}

// Page tokens are opaque to clients: standard base64 (like the documented
// example) of the session, the offset of the page's first run and the page
// number. Both base64 alphabets are accepted, padded or not.
const pageTokenVersion = "aily-runs-v1"

func encodePageToken(sessionID string, offset, pageNo int) string {
	raw := fmt.Sprintf("%s|%s|%d|%d", pageTokenVersion, sessionID, offset, pageNo)
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

func decodePageToken(tok, sessionID string) (offset, pageNo int, ok bool) {
	var raw []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(tok); err == nil {
			raw = b
			break
		}
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 4 || parts[0] != pageTokenVersion || parts[1] != sessionID {
		return 0, 0, false
	}
	offset, err1 := strconv.Atoi(parts[2])
	pageNo, err2 := strconv.Atoi(parts[3])
	if err1 != nil || err2 != nil || offset < 0 || pageNo < 0 {
		return 0, 0, false
	}
	return offset, pageNo, true
}
