package ci

import (
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// repoRoot is the repository this package sits in.
const repoRoot = ".."

// lookPath is the path of an external checker actionlint runs on the workflows' scripts, or "" where
// it is not installed: actionlint then skips that check and runs the rest.
func lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// newLinter returns an actionlint linter for this repository, with shellcheck and pyflakes where
// they are installed.
func newLinter(t *testing.T) (*actionlint.Linter, *actionlint.Project) {
	t.Helper()
	opts := &actionlint.LinterOptions{
		Color:      actionlint.ColorOptionKindNever,
		Shellcheck: lookPath("shellcheck"),
		Pyflakes:   lookPath("pyflakes"),
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The project (found by its .github/workflows, whether .git is a directory or a worktree's file)
	// lets actionlint resolve local actions and reusable workflows.
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	p, err := actionlint.NewProject(root)
	if err != nil {
		t.Fatal(err)
	}
	return l, p
}

func describe(errs []*actionlint.Error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Error())
	}
	return b.String()
}

func TestWorkflowsLint(t *testing.T) {
	var files []string
	for _, ext := range []string{"yml", "yaml"} {
		m, err := filepath.Glob(filepath.Join(repoRoot, ".github", "workflows", "*."+ext))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if !containsBase(files, "rehearse-nightly.yml") {
		t.Fatalf("the nightly workflow is missing: found %v", files)
	}
	for _, tool := range []string{"shellcheck", "pyflakes"} {
		if lookPath(tool) == "" {
			t.Logf("%s is not installed: the workflows' scripts are not checked with it", tool)
		}
	}
	l, p := newLinter(t)
	errs, err := l.LintFiles(files, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Errorf("actionlint found %d problems in %d workflows:%s", len(errs), len(files), describe(errs))
	}
}

func containsBase(paths []string, base string) bool {
	for _, p := range paths {
		if filepath.Base(p) == base {
			return true
		}
	}
	return false
}

// The linter is not a formality: workflows it must refuse are refused, for the reason expected, and
// a sound one passes.
func TestLinterCatchesBrokenWorkflows(t *testing.T) {
	const sound = `on: workflow_dispatch
permissions:
  contents: read
jobs:
  nightly:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v6
      - run: echo "${{ github.sha }}"
`
	for _, c := range []struct {
		name, workflow, want string
	}{
		{"sound", sound, ""},
		{"unknown job key", strings.Replace(sound, "runs-on:", "runs-onn:", 1), `unexpected key "runs-onn"`},
		{"bad expression", strings.Replace(sound, "github.sha", "github.sha ==", 1), "parsing"},
		{"unknown context property", strings.Replace(sound, "github.sha", "steps.build.outputs.key", 1), `property "build" is not defined`},
		{"unknown permission", strings.Replace(sound, "contents: read", "contents: readd", 1), "permission"},
		{"unknown action input", strings.Replace(sound, "      - run:", "        with:\n          fetch-deep: 0\n      - run:", 1), `input "fetch-deep" is not defined`},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, p := newLinter(t)
			errs, err := l.Lint(filepath.Join(repoRoot, ".github", "workflows", "broken.yml"), []byte(c.workflow), p)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if len(errs) > 0 {
					t.Errorf("a sound workflow was refused:%s", describe(errs))
				}
				return
			}
			for _, e := range errs {
				if strings.Contains(e.Message, c.want) {
					return
				}
			}
			t.Errorf("no error saying %q; actionlint found %d:%s", c.want, len(errs), describe(errs))
		})
	}
}
