package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// GoBuild describes main packages built from published Go modules through a generated wrapper module.
// A wrapper is needed because modules such as k8s.io/kubernetes and etcd's server replace their
// siblings with relative paths, which only the wrapper's own replace directives can redirect to the
// published versions.
type GoBuild struct {
	// Require lists "module version" pairs; the first is the module holding Packages.
	Require []string
	// Replace lists "module => module version" directives.
	Replace []string
	// Packages are the main packages to build; each binary is named after its last path element
	// (the module's own name where the package path ends in a major version such as /v3).
	Packages []string
	// Rename maps a package to the binary name to use instead.
	Rename map[string]string
	// LDFlags are passed to the linker besides -s -w.
	LDFlags []string
	// GoVersion is the go directive of the wrapper module.
	GoVersion string
	// CGO links with cgo, statically (for packages with C parts, such as flannel's udp backend).
	CGO bool
	// Tags are build tags.
	Tags []string
}

// GoBinaries returns a file step whose directory holds the built binaries.
func GoBinaries(name string, g GoBuild) *Step {
	inputs := []string{"go=" + goVersion()}
	inputs = append(inputs, g.Require...)
	inputs = append(inputs, g.Replace...)
	inputs = append(inputs, g.Packages...)
	inputs = append(inputs, g.LDFlags...)
	inputs = append(inputs, fmt.Sprintf("cgo=%v tags=%s", g.CGO, strings.Join(g.Tags, ",")))
	keys := make([]string, 0, len(g.Rename))
	for k := range g.Rename {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		inputs = append(inputs, "rename "+k+"="+g.Rename[k])
	}
	return &Step{
		Name:   name,
		Inputs: inputs,
		Build: func(ctx context.Context, b *Builder, s *Step) error {
			return buildGo(ctx, b, s, g)
		},
	}
}

func buildGo(ctx context.Context, b *Builder, s *Step, g GoBuild) error {
	work, err := b.ScratchDir(s.Name)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	goVer := g.GoVersion
	if goVer == "" {
		goVer = "1.24.0"
	}
	var mod strings.Builder
	fmt.Fprintf(&mod, "module rehearse.local/build/%s\n\ngo %s\n\n", s.Name, goVer)
	for _, r := range g.Require {
		fmt.Fprintf(&mod, "require %s\n", r)
	}
	for _, r := range g.Replace {
		fmt.Fprintf(&mod, "replace %s\n", r)
	}
	var tools strings.Builder
	tools.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, p := range g.Packages {
		fmt.Fprintf(&tools, "\t_ %q\n", p)
	}
	tools.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(mod.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "tools.go"), []byte(tools.String()), 0o644); err != nil {
		return err
	}
	cgo := "CGO_ENABLED=0"
	if g.CGO {
		cgo = "CGO_ENABLED=1"
	}
	env := append(os.Environ(), cgo, "GOFLAGS=-mod=mod", "GOWORK=off", "GOOS=linux")
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = work
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 3000))
		}
		return nil
	}
	if err := run("mod", "tidy", "-e"); err != nil {
		return err
	}
	ld := strings.Join(append([]string{"-s", "-w"}, g.LDFlags...), " ")
	if g.CGO {
		ld += " -extldflags -static"
	}
	// One invocation builds and links the packages in parallel; binaries land named like `go install`
	// names them, then take their final names.
	raw := filepath.Join(work, "bin")
	args := []string{"build", "-trimpath", "-ldflags", ld, "-o", raw + string(filepath.Separator)}
	if len(g.Tags) > 0 {
		args = append(args, "-tags", strings.Join(g.Tags, ","))
	}
	args = append(args, g.Packages...)
	if err := run(args...); err != nil {
		return err
	}
	for _, p := range g.Packages {
		name := binaryName(p)
		if r, ok := g.Rename[p]; ok {
			name = r
		}
		if err := os.Rename(filepath.Join(raw, binaryName(p)), filepath.Join(s.Dir, name)); err != nil {
			return err
		}
	}
	return nil
}

func binaryName(pkg string) string {
	parts := strings.Split(pkg, "/")
	last := parts[len(parts)-1]
	if len(parts) > 1 && len(last) > 1 && last[0] == 'v' && strings.Trim(last[1:], "0123456789") == "" {
		return parts[len(parts)-2]
	}
	return last
}

var goVersionOnce = sync.OnceValue(func() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
})

func goVersion() string { return goVersionOnce() }
