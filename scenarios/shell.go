package scenarios

import (
	"path"
	"strings"
)

// A host command (a run step, a runbook block) gets a kubeconfig that holds the rehearsal's cluster
// only. A command written for production names its own contexts and kubeconfigs; run as it stands it
// would reach that cluster. ReachesElsewhere finds, in a bash command line, what would point
// kubectl or helm somewhere else: one of their flags that names a context, kubeconfig or server, or
// KUBECONFIG set, exported or unset (kubectl then falls back to ~/.kube/config).

// shellWord is one word of a command line as bash would split it (quotes removed), or an operator
// that ends a simple command (op), with the line of the command line it starts on (from 0).
type shellWord struct {
	text string
	line int
	op   bool
}

// shellWords splits a bash command line into words and operators. It knows quotes, backslashes,
// comments, line continuations and the operators that separate simple commands (; & | && || ( ) and
// newlines); a command substitution $( ... ) or `...` starts a simple command of its own. It is not a
// full shell parser (no here-documents, no expansions): enough to find the words a safety rule looks
// for.
func shellWords(s string) []shellWord {
	var out []shellWord
	var cur strings.Builder
	inWord, line, start := false, 0, 0
	emit := func() {
		if inWord {
			out = append(out, shellWord{text: cur.String(), line: start})
		}
		cur.Reset()
		inWord = false
	}
	begin := func() {
		if !inWord {
			inWord, start = true, line
		}
	}
	op := func(o string) {
		emit()
		out = append(out, shellWord{text: o, line: line, op: true})
	}
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case c == '\n':
			op("\n")
			line++
		case c == ' ' || c == '\t' || c == '\r':
			emit()
		case c == '#' && !inWord:
			for i+1 < len(r) && r[i+1] != '\n' {
				i++
			}
		case c == '\\':
			if i+1 < len(r) {
				i++
				if r[i] == '\n' { // a continuation: the word (and the command) goes on
					line++
					continue
				}
				begin()
				cur.WriteRune(r[i])
			}
		case c == '\'':
			begin()
			for i++; i < len(r) && r[i] != '\''; i++ {
				if r[i] == '\n' {
					line++
				}
				cur.WriteRune(r[i])
			}
		case c == '"':
			begin()
			for i++; i < len(r) && r[i] != '"'; i++ {
				if r[i] == '\\' && i+1 < len(r) && strings.ContainsRune("\"\\$`\n", r[i+1]) {
					i++
					if r[i] == '\n' {
						line++
						continue
					}
				} else if r[i] == '\n' {
					line++
				}
				cur.WriteRune(r[i])
			}
		case c == '$' && i+1 < len(r) && r[i+1] == '(':
			i++
			op("$(")
		case c == '`' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')' || c == '<' || c == '>':
			op(string(c))
		default:
			begin()
			cur.WriteRune(c)
		}
	}
	emit()
	return out
}

// contextFlags are the flags of kubectl and helm that point them at another cluster.
var contextFlags = []string{"--context", "--kubeconfig", "--server", "--kube-context", "--kube-apiserver", "--cluster"}

// ReachesElsewhere says whether the bash command line cmd points kubectl or helm at a cluster other
// than the one its KUBECONFIG names: the line of cmd it does so on (from 0) and what it does.
func ReachesElsewhere(cmd string) (line int, what string, found bool) {
	words := shellWords(cmd)
	for i := 0; i < len(words); {
		j := i
		for j < len(words) && !words[j].op {
			j++
		}
		if l, w, ok := simpleReaches(words[i:j]); ok {
			return l, w, true
		}
		i = j + 1
	}
	return 0, "", false
}

// simpleReaches is ReachesElsewhere for one simple command.
func simpleReaches(ws []shellWord) (int, string, bool) {
	// Assignments before the command: KUBECONFIG=x kubectl ...
	k := 0
	for ; k < len(ws); k++ {
		name, _, ok := strings.Cut(ws[k].text, "=")
		if !ok || !isVarName(name) {
			break
		}
		if name == "KUBECONFIG" {
			return ws[k].line, "sets KUBECONFIG", true
		}
	}
	if k < len(ws) {
		switch ws[k].text {
		case "export", "declare", "typeset", "local", "readonly", "env", "unset":
			for _, w := range ws[k+1:] {
				if w.text == "KUBECONFIG" || strings.HasPrefix(w.text, "KUBECONFIG=") {
					if ws[k].text == "unset" {
						return w.line, "unsets KUBECONFIG (kubectl would fall back to ~/.kube/config)", true
					}
					return w.line, "sets KUBECONFIG", true
				}
			}
		}
	}
	tool := ""
	for _, w := range ws[k:] {
		if b := path.Base(w.text); b == "kubectl" || b == "helm" {
			tool = b
			continue
		}
		if tool == "" {
			continue
		}
		for _, f := range contextFlags {
			if w.text == f || strings.HasPrefix(w.text, f+"=") {
				return w.line, "passes " + f + " to " + tool, true
			}
		}
	}
	return 0, "", false
}

func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ContextRule is why a host command may not name another cluster, for problems.
const ContextRule = "a runbook written for production names its contexts; a rehearsal must never reach a cluster other than its own (KUBECONFIG holds the rehearsal's cluster only)"
