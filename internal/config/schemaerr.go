package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// schemaErrors checks a decoded document against the schema type t the
// way an operator reads it: each unknown key by its path as written
// ("routes[0].path_prefx: unknown field; did you mean path_prefix?"),
// each value of the wrong shape by its path and what it should be
// ("tokens.default_ttl: "soon" is not a duration (e.g. 90s, 15m, 24h)"),
// never a Go type name. It returns nil when it finds nothing; the
// decoder's own error stands then.
func schemaErrors(doc *yaml.Node, t reflect.Type) []string {
	var errs []string
	var walk func(n *yaml.Node, t reflect.Type, path string)
	walk = func(n *yaml.Node, t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if _, custom := reflect.New(t).Interface().(yaml.Unmarshaler); custom || t == reflect.TypeOf(time.Duration(0)) {
			if err := n.Decode(reflect.New(t).Interface()); err != nil {
				errs = append(errs, fmt.Sprintf("line %d: %s: %q is not %s", n.Line, path, n.Value, shapeOf(t)))
			}
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			if n.Kind != yaml.MappingNode {
				if !isNull(n) {
					errs = append(errs, fmt.Sprintf("line %d: %s: is not %s", n.Line, orTop(path), shapeOf(t)))
				}
				return
			}
			fields := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := join(path, k.Value)
				f, ok := fields[k.Value]
				if !ok {
					msg := fmt.Sprintf("line %d: %s: unknown field", k.Line, p)
					if s := closest(k.Value, fields); s != "" {
						msg += "; did you mean " + s + "?"
					}
					errs = append(errs, msg)
					continue
				}
				walk(v, f, p)
			}
		case reflect.Slice:
			if n.Kind != yaml.SequenceNode {
				if !isNull(n) {
					errs = append(errs, fmt.Sprintf("line %d: %s: is not %s", n.Line, path, shapeOf(t)))
				}
				return
			}
			for i, c := range n.Content {
				walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		default:
			if n.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Sprintf("line %d: %s: is not %s", n.Line, path, shapeOf(t)))
				return
			}
			if err := n.Decode(reflect.New(t).Interface()); err != nil {
				errs = append(errs, fmt.Sprintf("line %d: %s: %q is not %s", n.Line, path, n.Value, shapeOf(t)))
			}
		}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		walk(doc.Content[0], t, "")
	}
	return errs
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func orTop(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps a struct's YAML keys to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if sf.IsExported() && name != "" && name != "-" {
			m[name] = sf.Type
		}
	}
	return m
}

// shapeOf says in words what a value of t looks like in YAML.
func shapeOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(time.Duration(0)) || t == reflect.TypeOf(Duration(0)) {
		return "a duration (e.g. 90s, 15m, 24h)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping of settings"
	}
	return "a valid value"
}

// closest is the known key nearest to key by edit distance, when it is
// near enough to be a typo (at most max(2, len/3) edits); ties go to the
// alphabetically first.
func closest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", max(2, len(key)/3)+1
	for f := range fields {
		d := editDistance(strings.ToLower(key), f)
		if d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, with an adjacent
// transposition counted as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
