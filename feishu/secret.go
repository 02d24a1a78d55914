package feishu

import (
	"fmt"
	"io"
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
