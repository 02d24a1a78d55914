package feishu

import (
	"fmt"
	"net/url"
	"strings"
)

// ParseBaseURL checks raw as a client's base URL and returns it normalised:
// DefaultBaseURL when raw is empty, and without a trailing slash. It must be
// an absolute http(s) URL of a scheme and a host only: the client adds the
// /open-apis/… paths itself, so a path would double them and every request
// would answer 404, and user info, a query or a fragment would be sent
// nowhere or everywhere. It is the one rule for the Config's BaseURL and a
// configuration file's base_url.
//
// The error's text starts with the URL quoted, any password in it hidden,
// so that the caller prefixes the name it knows it by ("base URL",
// "base_url").
func ParseBaseURL(raw string) (string, error) {
	if raw == "" {
		return DefaultBaseURL, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must be an absolute http(s) URL without user info, query or fragment, such as %s",
			RedactURL(raw), DefaultBaseURL)
	}
	if u.Path != "" && u.Path != "/" || u.RawPath != "" || u.ForceQuery {
		return "", fmt.Errorf("%q must be a scheme and a host only, such as %s: the exporter adds the /open-apis/… paths itself",
			RedactURL(raw), DefaultBaseURL)
	}
	return strings.TrimRight(raw, "/"), nil
}

// RedactURL returns raw with the password someone put into it hidden, for an
// error to quote: also when raw does not parse, or parses as something else
// than scheme://user:password@host.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.User != nil:
		return u.Redacted()
	case err == nil && u.Opaque == "" && u.Host != "":
		return raw // parsed as //host…: an '@' after the host is no password
	}
	// Unparsed (a bad port or escape) or parsed as something else (no
	// scheme: "user:pass@host" reads as scheme "user"): whatever stands
	// before the last '@' may be user info. Keep the user, as u.Redacted
	// does, and hide the rest.
	prefix, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return raw
	}
	return prefix + user + ":xxxxx" + rest[at:]
}
