package load

import (
	"strings"
	"testing"
)

// The concatenating fill gives what text/template gives, for templates it takes and for those it
// leaves to text/template.
func TestFillerMatchesTemplate(t *testing.T) {
	for _, text := range []string{
		"", "/orders", "/orders/{{.ID}}", "/orders/{{ .RecentID }}?x={{.ID}}",
		`{"id":"{{.ID}}","name":"customer {{.ID}}","amount_cents":100}`,
		"{{.ID}}{{.RecentID}}{{.ID}}", "a }} b {{.ID}}", "{{- .ID -}} x", "{{if .ID}}{{.ID}}{{end}}", "{{/* c */}}{{.ID}}",
		"{{printf \"%s-%s\" .ID .RecentID}}", "{{.ID}} {{ .ID}} {{.ID }}",
	} {
		tm, err := ParseTemplate("t", text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		f := newFiller(tm, text)
		d := tmplData{ID: "run-1-42", RecentID: "run-1-7"}
		var want, got strings.Builder
		if err := tm.Execute(&want, d); err != nil {
			t.Fatal(err)
		}
		if err := f.fill(&got, d); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%q (fast %v): %q, text/template %q", text, f.fast, got.String(), want.String())
		}
	}
	if f := newFiller(nil, "/orders/{{.ID}}"); !f.fast {
		t.Error("a template with only {{.ID}} is not filled by concatenation")
	}
}
