package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// GatewayExampleDir is the directory the example's relative paths are
// resolved against.
const GatewayExampleDir = "/etc/certgate"

// GatewayExample is a complete gateway.yaml: every setting of the schema,
// in schema order, with what it does (the field's doc tag) and its value,
// which is the default unless the schema gives an example (its example
// tag: the identity, the server, one route and one TCP route). It is
// generated from the same struct the strict decoder and ValidateGateway
// check, so it cannot name a setting that does not exist or miss one that
// does (TestGatewayExample), and it loads as it is. `certgate gateway
// config example` prints it; docs/gateway.md carries it.
func GatewayExample() []byte {
	var g Gateway
	fillExamples(reflect.ValueOf(&g).Elem())
	g.setDefaults(GatewayExampleDir)
	var b bytes.Buffer
	b.WriteString("# gateway.yaml: every setting, with its default or an example value.\n" +
		"# Generated from the schema (certgate gateway config example). Unknown\n" +
		"# fields are errors. Relative paths are relative to this file's directory.\n")
	renderStruct(&b, reflect.ValueOf(g), "", "")
	return b.Bytes()
}

// fillExamples sets every field that has an example tag to it, and gives
// a list of structs one element filled the same way.
func fillExamples(v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		sf, fv := t.Field(i), v.Field(i)
		if ex := sf.Tag.Get("example"); ex != "" {
			if err := yaml.Unmarshal([]byte(ex), fv.Addr().Interface()); err != nil {
				panic(fmt.Sprintf("config: example of %s: %v", sf.Name, err)) // a schema typo, caught by the tests
			}
			continue
		}
		switch {
		case sf.Type.Kind() == reflect.Struct:
			fillExamples(fv)
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.Struct:
			one := reflect.New(sf.Type.Elem()).Elem()
			fillExamples(one)
			fv.Set(reflect.Append(fv, one))
		}
	}
}

// renderStruct writes v's settings at indent; first, if not empty, is
// written before the first key instead of the indent (a list item's "- ").
func renderStruct(b *bytes.Buffer, v reflect.Value, indent, first string) {
	t := v.Type()
	lead := first
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		for _, line := range wrap(sf.Tag.Get("doc"), 76-len(indent)) {
			b.WriteString(indent + "# " + line + "\n")
		}
		prefix := indent
		if lead != "" {
			prefix, lead = lead, ""
		}
		fv := v.Field(i)
		switch {
		case sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeOf(Duration(0)):
			b.WriteString(prefix + name + ":\n")
			renderStruct(b, fv, indent+"  ", "")
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.Struct:
			if fv.Len() == 0 {
				b.WriteString(prefix + name + ": []\n")
				continue
			}
			b.WriteString(prefix + name + ":\n")
			for j := range fv.Len() {
				renderStruct(b, fv.Index(j), indent+"    ", indent+"  - ")
			}
		default:
			b.WriteString(prefix + name + ": " + scalar(fv) + "\n")
		}
	}
}

// scalar formats a leaf value as YAML.
func scalar(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "null"
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case Duration:
		return time.Duration(x).String()
	case string:
		return quote(x)
	case []string:
		items := make([]string, len(x))
		for i, s := range x {
			items[i] = quote(s)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	panic(fmt.Sprintf("config: no YAML form for %s", v.Type())) // a new kind of setting, caught by the tests
}

// quote leaves a string bare when YAML reads it back as the same string.
func quote(s string) string {
	var back string
	if s != "" && !strings.ContainsAny(s, ":#[]{},&*!|>'\"%@`") && !strings.HasPrefix(s, "-") &&
		yaml.Unmarshal([]byte("v: "+s), &struct {
			V *string `yaml:"v"`
		}{&back}) == nil && back == s {
		return s
	}
	return strconv.Quote(s)
}

// wrap cuts text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
