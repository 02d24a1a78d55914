package feishu

import (
	"errors"
	"fmt"
)

// Credentials are what a client authenticates with: exactly one kind, AppID
// with AppSecret (a tenant_access_token is obtained and renewed), or
// UserAccessTokenFile.
type Credentials struct {
	AppID               string
	AppSecret           Secret
	UserAccessTokenFile string
}

// The ways Credentials can be wrong, which Check's errors wrap, so that a
// caller that names the fields otherwise (a configuration file, where the
// secret may come from app_secret_file) can say it in its own words.
var (
	ErrNoCredentials    = errors.New("no credentials")
	ErrMixedCredentials = errors.New("two kinds of credentials")
	ErrNoAppID          = errors.New("app_id is empty")
	ErrNoAppSecret      = errors.New("empty app_secret")
)

// tenant reports whether c are an app's credentials, even an incomplete one.
func (c Credentials) tenant() bool { return c.AppID != "" || c.AppSecret != "" }

// Check returns what is wrong with c, nil if nothing: it is the one rule of
// which credentials a client can use. Its error never shows the secret.
func (c Credentials) Check() error {
	user := c.UserAccessTokenFile != ""
	switch {
	case c.tenant() && user:
		return fmt.Errorf("set either app_id/app_secret or a user access token file, not both: %w", ErrMixedCredentials)
	case !c.tenant() && !user:
		return fmt.Errorf("%w: set app_id and app_secret, or a user access token file", ErrNoCredentials)
	case c.tenant() && c.AppID == "":
		return fmt.Errorf("app_secret is set but %w", ErrNoAppID)
	case c.tenant() && c.AppSecret == "":
		return fmt.Errorf("app %s has an %w", c.AppID, ErrNoAppSecret)
	}
	return nil
}
