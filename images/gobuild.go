package images

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// GoBuild describes binaries built from published Go modules through one generated wrapper module.
// A wrapper is needed because modules such as k8s.io/kubernetes and etcd's server replace their
// siblings with relative paths, which only the wrapper's own replace directives can redirect to the
// published versions. Putting several programs into one wrapper gives them one build list, so a
// dependency they share (client-go and its kin for Kubernetes, CoreDNS, flannel and
// local-path-provisioner) is compiled once, not once per program.
type GoBuild struct {
	// Require lists "module version" pairs.
	Require []string
	// Replace lists "module => module version" directives.
	Replace []string
	// GoVersion is the go directive of the wrapper module.
	GoVersion string
	// Files are written into the wrapper module (path → content): main packages of its own, built
	// as "./dir" in a Set.
	Files map[string]string
	// Sets are `go build` invocations, run one after another in the wrapper module with one Go
	// build cache: packages they have in common compile in the first and are reused by the rest.
	// Programs need sets of their own only where they cannot be built together (cgo, or a
	// dependency whose import path differs from another's only in case).
	Sets []GoSet
}

// GoSet is one `go build` invocation of a GoBuild.
type GoSet struct {
	// Packages are the main packages to build; each binary is named after its last path element
	// (the module's own name where the package path ends in a major version such as /v3).
	Packages []string
	// Rename maps a package to the binary name to use instead.
	Rename map[string]string
	// LDFlags are passed to the linker besides -s -w.
	LDFlags []string
	// CGO links with cgo, statically (for packages with C parts, such as flannel's udp backend).
	CGO bool
	// Tags are build tags.
	Tags []string
}

// GoBinaries returns a file step whose directory holds the built binaries.
func GoBinaries(name string, g GoBuild) *Step {
	inputs := []string{"go=" + goVersion(), "gcflags=" + gcFlags, "go directive " + g.GoVersion}
	inputs = append(inputs, g.Require...)
	inputs = append(inputs, g.Replace...)
	for _, p := range slices.Sorted(maps.Keys(g.Files)) {
		inputs = append(inputs, "file "+p+"\n"+g.Files[p])
	}
	for i, set := range g.Sets {
		inputs = append(inputs, fmt.Sprintf("set %d: cgo=%v tags=%s", i, set.CGO, strings.Join(set.Tags, ",")))
		inputs = append(inputs, set.Packages...)
		inputs = append(inputs, set.LDFlags...)
		for _, k := range slices.Sorted(maps.Keys(set.Rename)) {
			inputs = append(inputs, "rename "+k+"="+set.Rename[k])
		}
	}
	return &Step{
		Name:   name,
		Inputs: inputs,
		Build: func(ctx context.Context, b *Builder, s *Step) error {
			return buildGo(ctx, b, s, g)
		},
	}
}

// gcFlags drop the compiler's DWARF output: the binaries are linked with -s -w, which would throw
// it away, and generating it costs compile time.
const gcFlags = "all=-dwarf=false"

func buildGo(ctx context.Context, b *Builder, s *Step, g GoBuild) error {
	work, err := b.ScratchDir(s.Name)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	_, err = g.build(ctx, s.Name, work, s.Dir, nil, false)
	return err
}

// MeasureBuild builds g in dir (a new wrapper module named name) with the Go build cache gocache
// (empty for a cold build) and reads where the time went from each `go build`'s action graph. The
// binaries land in dir/out.
func (g GoBuild) MeasureBuild(ctx context.Context, name, dir, gocache string) (*BuildTimes, error) {
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	return g.build(ctx, name, dir, out, []string{"GOCACHE=" + gocache}, true)
}

// build writes the wrapper module into work, resolves it and runs each set's `go build`, leaving the
// binaries in out under their final names. With graph, each build writes its action graph, and the
// times read from them are returned.
func (g GoBuild) build(ctx context.Context, name, work, out string, env []string, graph bool) (*BuildTimes, error) {
	goVer := g.GoVersion
	if goVer == "" {
		goVer = "1.24.0"
	}
	var mod strings.Builder
	fmt.Fprintf(&mod, "module rehearse.local/build/%s\n\ngo %s\n\n", name, goVer)
	for _, r := range g.Require {
		fmt.Fprintf(&mod, "require %s\n", r)
	}
	for _, r := range g.Replace {
		fmt.Fprintf(&mod, "replace %s\n", r)
	}
	// tools.go imports the published main packages, so that `go mod tidy` requires what they need.
	var tools strings.Builder
	tools.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, set := range g.Sets {
		for _, p := range set.Packages {
			if !strings.HasPrefix(p, "./") {
				fmt.Fprintf(&tools, "\t_ %q\n", p)
			}
		}
	}
	tools.WriteString(")\n")
	files := map[string]string{"go.mod": mod.String(), "tools.go": tools.String()}
	for p, data := range g.Files {
		files[p] = data
	}
	for p, data := range files {
		dst := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, []byte(data), 0o644); err != nil {
			return nil, err
		}
	}
	run := func(extra []string, args ...string) error {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), append([]string{"GOFLAGS=-mod=mod", "GOWORK=off", "GOOS=linux"}, append(env, extra...)...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 3000))
		}
		return nil
	}
	if err := run(nil, "mod", "tidy", "-e"); err != nil {
		return nil, err
	}
	raw := filepath.Join(work, "bin")
	times := &BuildTimes{}
	for i, set := range g.Sets {
		cgo := "CGO_ENABLED=0"
		ld := strings.Join(append([]string{"-s", "-w"}, set.LDFlags...), " ")
		if set.CGO {
			cgo = "CGO_ENABLED=1"
			ld += " -extldflags -static"
		}
		// One invocation builds and links its packages in parallel; binaries land named like `go
		// install` names them, then take their final names.
		args := []string{"build", "-trimpath", "-gcflags=" + gcFlags, "-ldflags", ld, "-o", raw + string(filepath.Separator)}
		graphFile := filepath.Join(work, fmt.Sprintf("actiongraph-%d.json", i))
		if graph {
			args = append(args, "-debug-actiongraph="+graphFile)
		}
		if len(set.Tags) > 0 {
			args = append(args, "-tags", strings.Join(set.Tags, ","))
		}
		args = append(args, set.Packages...)
		if err := run([]string{cgo}, args...); err != nil {
			return nil, err
		}
		for _, p := range set.Packages {
			name := binaryName(p)
			if r, ok := set.Rename[p]; ok {
				name = r
			}
			if err := os.Rename(filepath.Join(raw, binaryName(p)), filepath.Join(out, name)); err != nil {
				return nil, err
			}
		}
		if graph {
			f, err := os.Open(graphFile)
			if err != nil {
				return nil, err
			}
			bt, err := ReadActionGraph(f)
			f.Close()
			if err != nil {
				return nil, err
			}
			times.Add(bt)
		}
	}
	return times, nil
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
