package feishu

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func TestSecretNeverShowsItsValue(t *testing.T) {
	s := Secret("hunter2")
	for _, got := range []string{s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintf("%x %d %q %#v", s, s, s, s)} {
		if strings.Contains(got, "hunter2") || strings.Contains(got, hex.EncodeToString([]byte("hunter2"))) {
			t.Errorf("%q shows the secret", got)
		}
	}
	c, err := NewClient(Config{UserAccessTokenFile: "/run/secrets/token"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c); got != "feishu.Client{base_url: https://open.feishu.cn, credentials: user access token from file /run/secrets/token}" {
		t.Errorf("client prints as %q", got)
	}
	if got := fmt.Sprint((*Client)(nil)); got != "feishu.Client(nil)" {
		t.Errorf("nil client prints as %q", got)
	}
}
