package config

import (
	"reflect"
	"strings"
)

// Changed returns the YAML paths ("server.listen", "routes") of the
// settings that differ between a and b, two values of the same schema
// type, in field order. A reload uses it to say, setting by setting, what
// it applied and what needs a restart. A list (routes, hosts) is one
// setting.
func Changed(a, b any) []string {
	var out []string
	walkLeaves(reflect.ValueOf(a), reflect.ValueOf(b), "", func(path string, x, y reflect.Value) {
		if x.Kind() == reflect.Slice && x.Len() == 0 && y.Len() == 0 {
			return // nil and empty are the same setting
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			out = append(out, path)
		}
	})
	return out
}

// Settings returns the YAML paths of every setting of schema value v, in
// field order: the list a reload's classification is checked against.
func Settings(v any) []string {
	var out []string
	rv := reflect.ValueOf(v)
	walkLeaves(rv, rv, "", func(path string, _, _ reflect.Value) { out = append(out, path) })
	return out
}

func walkLeaves(a, b reflect.Value, prefix string, f func(path string, a, b reflect.Value)) {
	for a.Kind() == reflect.Pointer && a.Type().Elem().Kind() == reflect.Struct {
		if a.IsNil() || b.IsNil() {
			f(strings.TrimSuffix(prefix, "."), a, b)
			return
		}
		a, b = a.Elem(), b.Elem()
	}
	t := a.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		path := prefix + name
		if sf.Type.Kind() == reflect.Struct {
			walkLeaves(a.Field(i), b.Field(i), path+".", f)
			continue
		}
		f(path, a.Field(i), b.Field(i))
	}
}
