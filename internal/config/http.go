package config

import (
	"fmt"
	"net/url"
	"reflect"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// HTTPClient is sessions_http_config: the HTTP client settings Prometheus
// users know from http_sd_configs and scrape configs (basic_auth,
// authorization, bearer_token_file, oauth2, tls_config, proxy_url,
// http_headers, follow_redirects, enable_http2), exactly as
// github.com/prometheus/common/config decodes them.
//
// It is a type of its own, not promconfig.HTTPClientConfig itself, only so
// that it is validated with the app's other fields (Validate in resolve)
// rather than while decoding, where a mistake would be reported without the
// app it belongs to.
type HTTPClient promconfig.HTTPClientConfig

// UnmarshalYAML applies Prometheus' defaults (follow_redirects and
// enable_http2 true) before decoding. It takes the older form of
// yaml.Unmarshaler on purpose: yaml.v3 decodes through it with the strict
// decoder of the whole file, so an unknown key inside is still an error,
// where Node.Decode would not be strict.
func (c *HTTPClient) UnmarshalYAML(unmarshal func(any) error) error {
	type plain HTTPClient
	*c = HTTPClient(promconfig.DefaultHTTPClientConfig)
	return unmarshal((*plain)(c))
}

// Prometheus returns the settings as prometheus/common takes them; the
// defaults when c is nil.
func (c *HTTPClient) Prometheus() promconfig.HTTPClientConfig {
	if c == nil {
		return promconfig.DefaultHTTPClientConfig
	}
	return promconfig.HTTPClientConfig(*c)
}

// redacted returns a copy of c with every secret in it (basic_auth's
// password, authorization's credentials, bearer_token, oauth2's
// client_secret, tls_config's key, secret headers…) replaced by "<secret>",
// and a password in proxy_url by "xxxxx" (as promconfig.URL also marshals
// it). It finds them by their type,
// promconfig.Secret, wherever they are, so that a field prometheus/common
// adds later is redacted too, and does not depend on how Secret marshals
// (promconfig.MarshalSecretValue, a package-level switch, would show them).
func (c *HTTPClient) redacted() *HTTPClient {
	if c == nil {
		return nil
	}
	return redactValue(reflect.ValueOf(c)).Interface().(*HTTPClient)
}

var (
	secretType = reflect.TypeFor[promconfig.Secret]()
	urlType    = reflect.TypeFor[promconfig.URL]()
)

// redactValue returns a deep copy of v with its secrets replaced, for
// marshaling: the unexported fields of structs are left out.
func redactValue(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch {
	case v.Type() == secretType:
		if v.String() != "" {
			out.SetString(string(redactedSecret))
		}
		return out
	case v.Type() == urlType:
		u := v.Interface().(promconfig.URL)
		if u.URL != nil {
			cp := *u.URL
			if _, ok := cp.User.Password(); ok {
				cp.User = url.UserPassword(cp.User.Username(), "xxxxx")
			}
			out.Set(reflect.ValueOf(promconfig.URL{URL: &cp}))
		}
		return out
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return out
		}
		out.Set(reflect.New(v.Type().Elem()))
		out.Elem().Set(redactValue(v.Elem()))
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(redactValue(v.Field(i)))
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			return out
		}
		out.Set(reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
		for i := range v.Len() {
			out.Index(i).Set(redactValue(v.Index(i)))
		}
	case reflect.Map:
		if v.IsNil() {
			return out
		}
		out.Set(reflect.MakeMapWithSize(v.Type(), v.Len()))
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), redactValue(it.Value()))
		}
	default:
		out.Set(v)
	}
	return out
}

// httpClientError says which app's sessions_http_config the file fails to
// decode on, and on which line; nil if none does. prometheus/common checks
// tls_config and oauth2 while decoding them, and its errors ("at most one of
// ca, ca_file & ca_ref must be configured") name neither.
func httpClientError(data []byte) error {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	_, apps := mappingValue(doc.Content[0], "apps")
	if apps == nil || apps.Kind != yaml.SequenceNode {
		return nil
	}
	for i, app := range apps.Content {
		key, node := mappingValue(app, "sessions_http_config")
		if node == nil {
			continue
		}
		var c HTTPClient
		if err := node.Decode(&c); err != nil {
			where := fmt.Sprintf("apps[%d]", i)
			if _, name := mappingValue(app, "name"); name != nil && name.Kind == yaml.ScalarNode {
				where = fmt.Sprintf("app %q", name.Value)
			}
			return fmt.Errorf("%s (line %d): sessions_http_config (line %d): %w", where, app.Line, key.Line, err)
		}
	}
	return nil
}

// mappingValue returns the node of key in the mapping n and its value's;
// nils if n is no mapping or has no such key.
func mappingValue(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
