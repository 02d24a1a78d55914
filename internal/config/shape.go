package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// scalarTypes are the struct or number types of sessions_http_config that
// YAML writes as a string, decoded by their own UnmarshalYAML, and how to
// say what they look like.
var scalarTypes = map[reflect.Type]string{
	reflect.TypeFor[promconfig.URL]():        "a URL such as http://proxy.example.com:3128",
	reflect.TypeFor[promconfig.TLSVersion](): "a TLS version such as TLS12 or TLS13",
}

// shapeError is a value of the wrong shape in the file: a mapping where a
// list belongs, a list where a string does, a word where true or false does.
type shapeError struct {
	line int
	msg  string
}

// shapeErrors walks the document in data along the type it decodes into
// (v's) and words every value of the wrong shape by its line, its key path
// (apps[0].sessions) and the shape expected. yaml.v3 says only
// "cannot unmarshal !!map into []*config.App", which names a Go type but
// neither the key nor what to write instead.
func shapeErrors(data []byte, v any) []shapeError {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	var out []shapeError
	walkShape(doc.Content[0], reflect.TypeOf(v), "", &out)
	return out
}

func walkShape(n *yaml.Node, t reflect.Type, path string, out *[]shapeError) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // left empty: the zero value, which validation judges
	}
	wrong := func() {
		what := "the file"
		if path != "" {
			what = path
		}
		*out = append(*out, shapeError{n.Line, fmt.Sprintf("line %d: %s must be %s, not %s", n.Line, what, expectedShape(t), shapeOf(n))})
	}
	if _, ok := scalarTypes[t]; ok {
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			wrong()
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			wrong()
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if f, ok := fieldByKey(t, key); ok {
				walkShape(n.Content[i+1], f.Type, join(path, key), out)
			} // an unknown key is reported by the strict decoder
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			wrong()
			return
		}
		for i, item := range n.Content {
			walkShape(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", out)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			wrong()
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkShape(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), out)
		}
	case reflect.Interface:
	default:
		// A scalar: whether it fits is what yaml.v3 itself says, decoding
		// it alone ("5s" fits a time.Duration, "yes" does not fit a bool).
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			wrong()
		}
	}
}

// fieldByKey returns the field of struct t that the YAML key decodes into,
// looking into inlined structs (sessions_http_config's proxy settings).
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if _, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); opts == "inline" && f.Type.Kind() == reflect.Struct {
			if inner, ok := fieldByKey(f.Type, key); ok {
				return inner, true
			}
			continue
		}
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keyPath returns the path (apps[0].sessions_http_config.tls_config) of the
// mapping in which key stands on line; "the file" if it is not found.
func keyPath(data []byte, line int, key string) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return "the file"
	}
	var find func(n *yaml.Node, path string) (string, bool)
	find = func(n *yaml.Node, path string) (string, bool) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Line == line && k.Value == key {
					return path, true
				}
				if p, ok := find(n.Content[i+1], join(path, k.Value)); ok {
					return p, true
				}
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				if p, ok := find(item, path+"["+strconv.Itoa(i)+"]"); ok {
					return p, true
				}
			}
		}
		return "", false
	}
	if p, ok := find(doc.Content[0], ""); ok && p != "" {
		return p
	}
	return "the file"
}

// yamlKey is the key of f in YAML, as yaml.v3 names it.
func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// expectedShape says in words what a value of type t looks like in YAML.
func expectedShape(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if shape, ok := scalarTypes[t]; ok {
		return shape
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration such as 30s or 5m"
	case t.Kind() == reflect.Struct:
		return "a mapping of keys to values (" + keysOf(t) + ")"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		elem := t.Elem()
		for elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		if elem.Kind() == reflect.Struct {
			return fmt.Sprintf(`a list of %ss, each item starting with "- " (such as "- %s: …")`,
				strings.ToLower(elem.Name()), yamlKey(elem.Field(0)))
		}
		return fmt.Sprintf(`a list of %s, one "- " item a line or [a, b]`, plural(expectedShape(elem)))
	case t.Kind() == reflect.Map:
		return "a mapping of keys to " + plural(expectedShape(t.Elem()))
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	}
	return "a " + t.Kind().String()
}

// plural turns "a string" into "strings", for "a list of strings".
func plural(shape string) string {
	if s, ok := strings.CutPrefix(shape, "a "); ok && !strings.Contains(s, " ") {
		return s + "s"
	}
	return "values that are each " + shape
}

// keysOf lists the first keys of struct t, for a hint.
func keysOf(t reflect.Type) string {
	var keys []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			keys = append(keys, yamlKey(f))
		}
	}
	if len(keys) > 3 {
		return strings.Join(keys[:3], ", ") + ", …"
	}
	return strings.Join(keys, ", ")
}

// shapeOf says in words what n is.
func shapeOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value)"
	case yaml.SequenceNode:
		return "a list"
	}
	v := []rune(n.Value)
	if len(v) > 40 {
		v = append(v[:40], '…')
	}
	return strconv.Quote(string(v))
}
