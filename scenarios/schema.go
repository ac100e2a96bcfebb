package scenarios

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Schema returns the JSON Schema (draft 2020-12) of scenario files, derived from the Go types, so
// editors can complete and check them. scenario.schema.json in this directory is its output.
func Schema() ([]byte, error) {
	s := typeSchema(reflect.TypeOf(Scenario{}))
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["title"] = "rehearse scenario"
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

var (
	durationType = reflect.TypeOf(Duration{})
	rateType     = reflect.TypeOf(Rate{})
	atType       = reflect.TypeOf(At{})
)

func typeSchema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, "description": "a duration such as 500ms, 10s or 1m30s"}
	case atType:
		return map[string]any{"type": "string", "pattern": `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.end)?\+)?[0-9][0-9a-zµ.]*$`, "description": "30s, STEP+5s or STEP.end+5s"}
	case rateType:
		return map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)?/(s|m|h)$`, "description": "requests per second, minute or hour, such as 50/s"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": typeSchema(t.Elem())}
	case reflect.Map:
		m := map[string]any{"type": "object", "additionalProperties": typeSchema(t.Elem())}
		if t.Elem() == reflect.TypeOf(CheckArg{}) {
			m["propertyNames"] = map[string]any{"enum": Checks}
		}
		return m
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := typeSchema(f.Type)
			if doc := f.Tag.Get("doc"); doc != "" {
				p["description"] = doc
			}
			if enum := f.Tag.Get("enum"); enum != "" {
				p["enum"] = strings.Split(enum, ",")
			}
			props[name] = p
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return map[string]any{}
}
