package feishu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// wireGetRun is the get-run body as the API sends it: the run in data.run.
type wireGetRun struct {
	apiBody
	Data *struct {
		Run *wireRun `json:"run"`
	} `json:"data"`
}

// GetRun gets one run of a session: GET
// /open-apis/aily/v1/sessions/:aily_session_id/runs/:run_id, whose data.run
// has the fields of a listed run. A rejected token is renewed once; rate
// limits, 5xx and transport errors are retried within ctx, as for list
// pages. A run with malformed fields is reported to the Observer and
// returned with them zero. A body without data.run, or whose run has another
// ID, is an *APIError; so is an unknown run (code 2700001).
func (c *Client) GetRun(ctx context.Context, sessionID, runID string) (Run, error) {
	switch {
	case sessionID == "":
		return Run{}, errors.New("get run: empty session ID")
	case runID == "":
		return Run{}, fmt.Errorf("get run of session %s: empty run ID", sessionID)
	}
	r, err := c.getRun(ctx, sessionID, runID)
	if err != nil {
		return Run{}, fmt.Errorf("get run %s of session %s: %w", runID, sessionID, err)
	}
	return r, nil
}

func (c *Client) getRun(ctx context.Context, sessionID, runID string) (Run, error) {
	endpoint := c.base + "/open-apis/aily/v1/sessions/" + url.PathEscape(sessionID) + "/runs/" + url.PathEscape(runID)
	var w wireGetRun
	resp, err := c.getWithToken(ctx, EndpointGetRun, endpoint, func(body []byte) (apiBody, error) {
		w = wireGetRun{}
		err := json.Unmarshal(body, &w)
		return w.apiBody, err
	})
	if err != nil {
		return Run{}, err
	}
	apiErr := func(msg string) error {
		return c.apiError(EndpointGetRun, resp, msg)
	}
	// The envelope decoded (do checked it), so a decodeErr is a field of the
	// wrong type somewhere in data; Unmarshal filled in the other fields.
	switch {
	case w.Data == nil || w.Data.Run == nil:
		msg := "response without data.run"
		if resp.decodeErr != nil {
			msg += ": " + resp.decodeErr.Error()
		}
		return Run{}, apiErr(msg)
	case w.Data.Run.ID == "":
		return Run{}, apiErr("response data.run has no id")
	case w.Data.Run.ID != runID:
		return Run{}, apiErr(fmt.Sprintf("response data.run is run %s", truncate(w.Data.Run.ID, 64)))
	}
	r, err := w.Data.Run.run(sessionID, resp.decodeErr, c.now())
	if err != nil {
		c.obs.ObserveMalformedRun(sessionID, r.ID, err)
	}
	return r, nil
}
