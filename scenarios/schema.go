package scenarios

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Schema returns the JSON Schema (draft 2020-12) of scenario files, derived from the Go types, so
// editors can complete and check them; its verify section from the table of checks (each check with
// the options it takes, no other). scenario.schema.json in this directory is its output for
// verify.Table (runner.Schema).
func Schema(checks []CheckSchema) ([]byte, error) {
	s := typeSchema(reflect.TypeOf(Scenario{}))
	arg := typeSchema(reflect.TypeOf(CheckArg{}))["properties"].(map[string]any)
	vs := map[string]any{}
	for _, c := range checks {
		props := map[string]any{}
		for _, o := range c.Options {
			props[o] = arg[o]
		}
		vs[c.Name] = map[string]any{"type": "object", "description": c.Doc, "properties": props, "additionalProperties": false}
	}
	s["properties"].(map[string]any)["verify"] = map[string]any{"type": "object", "description": "checks to run, by name",
		"properties": vs, "additionalProperties": false, "minProperties": 1}
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
		return map[string]any{"type": "object", "additionalProperties": typeSchema(t.Elem())}
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
