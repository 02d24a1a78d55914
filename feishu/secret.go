package feishu

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
	"sync"
)

// redacted is what a Secret shows instead of its value.
const redacted = "<secret>"

// Secret is a credential (an app secret or a token). Every way of printing or
// marshalling it shows "<secret>", so that a Config can be logged or served
// as it is; use string(s) to read the value.
type Secret string

// String returns "<secret>".
func (Secret) String() string { return redacted }

// GoString returns "<secret>", for %#v.
func (Secret) GoString() string { return redacted }

// Format writes "<secret>" whatever the verb, so that %d, %x or %q do not
// reveal the value either.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "<secret>".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "<secret>", which also covers YAML encoders.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// tokenMask is what an error shows instead of a token.
const tokenMask = "<token>"

// maxKnownTokens is how many of the latest tokens knownSecrets remembers:
// the one in use and those just replaced or rejected.
const maxKnownTokens = 8

// knownSecrets are the credentials no error text may show, because the API
// (or a gateway in front of it) may quote a request back: the app secret
// and the latest tokens. It is safe for concurrent use.
type knownSecrets struct {
	mu     sync.Mutex
	secret string
	tokens []string // oldest first
}

func newKnownSecrets(secret Secret) *knownSecrets {
	return &knownSecrets{secret: string(secret)}
}

// addToken remembers a token obtained or read, forgetting the oldest beyond
// maxKnownTokens.
func (k *knownSecrets) addToken(tok string) {
	if tok == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if i := slices.Index(k.tokens, tok); i >= 0 {
		k.tokens = slices.Delete(k.tokens, i, i+1)
	}
	k.tokens = append(k.tokens, tok)
	if len(k.tokens) > maxKnownTokens {
		k.tokens = slices.Delete(k.tokens, 0, len(k.tokens)-maxKnownTokens)
	}
}

// mask is a credential's text in one of the forms an answer may quote it in,
// and what to show instead.
type mask struct{ text, with string }

// masks returns every form of every known credential, longest first, so
// that an escaped form is replaced before a shorter form inside it.
func (k *knownSecrets) masks() []mask {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ms []mask
	add := func(v, with string) {
		for _, f := range quotedForms(v) {
			ms = append(ms, mask{f, with})
		}
	}
	if k.secret != "" {
		add(k.secret, redacted)
	}
	for _, t := range k.tokens {
		add(t, tokenMask)
	}
	slices.SortStableFunc(ms, func(a, b mask) int { return cmp.Compare(len(b.text), len(a.text)) })
	return ms
}

// quotedForms are the ways an answer may quote v: as it is, JSON-escaped
// (as the client sends the app secret, with or without HTML escaping) and
// HTML-escaped.
func quotedForms(v string) []string {
	forms := []string{v, html.EscapeString(v)}
	var b strings.Builder
	for _, escapeHTML := range []bool{true, false} {
		b.Reset()
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		if enc.Encode(v) == nil {
			js := strings.TrimSuffix(b.String(), "\n")
			js = js[1 : len(js)-1] // the quotes
			forms = append(forms, js, html.EscapeString(js))
		}
	}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// longest is the length of the longest form of a known credential.
func longest(ms []mask) int {
	if len(ms) == 0 {
		return 0
	}
	return len(ms[0].text)
}

// scrub replaces every known credential in s.
func scrub(ms []mask, s string) string {
	for _, m := range ms {
		if strings.Contains(s, m.text) {
			s = strings.ReplaceAll(s, m.text, m.with)
		}
	}
	return s
}
