package watch

import (
	"strings"
	"testing"
)

func TestEscapeControl(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain 文字", "plain 文字"},
		{"a\nb\tc\x00", `a\nb\tc\x00`},
		{"bad \xff byte", `bad \xff byte`},
		{"sep\u2028", `sep\u2028`},
		{strings.Repeat("a", 256), strings.Repeat("a", 256)},
		{strings.Repeat("a", 257), strings.Repeat("a", 253) + "…"},
		{strings.Repeat("\n", 200), strings.Repeat(`\n`, 126) + "…"},
	} {
		if got := escapeControl(tc.in, 256); got != tc.want || len(got) > 256 {
			t.Errorf("escapeControl(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
