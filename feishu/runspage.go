package feishu

// RunsPage is one page of a session's runs as the API returned it.
type RunsPage struct {
	Runs          []Run
	NextPageToken string // the token of the next page; "" when !HasMore
	HasMore       bool
}
