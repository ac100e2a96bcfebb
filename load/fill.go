package load

import (
	"regexp"
	"strings"
	"text/template"
)

// filler fills a path or body template with a request's ids. A template whose only actions are
// {{.ID}} and {{.RecentID}} (every shipped one, and most a team writes) is filled by concatenating
// its literal parts and the ids: text/template's reflection costs a share of the load path's rate
// at saturation. Anything else is executed by text/template; both give the same text.
type filler struct {
	tmpl   *template.Template
	fast   bool
	lits   []string // the literal text around the fields: len(fields)+1 parts
	recent []bool   // per field: RecentID (else ID)
}

var idAction = regexp.MustCompile(`\{\{\s*\.(ID|RecentID)\s*\}\}`)

func newFiller(t *template.Template, text string) filler {
	f := filler{tmpl: t}
	rest := idAction.ReplaceAllString(text, "")
	if strings.Contains(rest, "{{") {
		return f // other actions, comments or trim markers: text/template's job
	}
	at := 0
	for _, m := range idAction.FindAllStringSubmatchIndex(text, -1) {
		f.lits = append(f.lits, text[at:m[0]])
		f.recent = append(f.recent, text[m[2]:m[3]] == "RecentID")
		at = m[1]
	}
	f.lits = append(f.lits, text[at:])
	f.fast = true
	return f
}

func (f *filler) fill(b *strings.Builder, d tmplData) error {
	if !f.fast {
		return f.tmpl.Execute(b, d)
	}
	for i, lit := range f.lits {
		b.WriteString(lit)
		if i < len(f.recent) {
			if f.recent[i] {
				b.WriteString(d.RecentID)
			} else {
				b.WriteString(d.ID)
			}
		}
	}
	return nil
}
