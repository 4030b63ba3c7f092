package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a config file; anything larger is not a config.
const MaxFileSize = 1 << 20

// DecodeStrict decodes one YAML document into v, refusing unknown fields
// (the error names the field and its line), duplicate keys, a second
// document and an empty input. name is used in error messages (a file path).
func DecodeStrict(name string, data []byte, v any) error {
	if len(data) > MaxFileSize {
		return fmt.Errorf("config %s: larger than %d bytes", name, MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("config %s: empty", name)
		}
		// Say what is wrong in the file's own words (the key as written,
		// its path, what would be valid), not the decoder's Go types.
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) == nil {
			if errs := schemaErrors(&doc, reflect.TypeOf(v)); len(errs) > 0 {
				return fmt.Errorf("config %s: %w", name, &SchemaError{Problems: errs})
			}
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: more than one YAML document", name)
	}
	return nil
}

// SchemaError lists what does not fit the schema, each problem with its
// line and the setting's path as written.
type SchemaError struct {
	Problems []string
}

func (e *SchemaError) Error() string { return strings.Join(e.Problems, "; ") }
