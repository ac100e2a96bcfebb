// Package images owns rehearse's offline image builds. Every image a cluster or a workload runs is built
// here from Debian packages (debootstrap) and Go modules (the module proxy), never pulled from a
// registry. Each build step is keyed by the hash of its inputs and of its dependencies' keys; a step
// whose key matches what is already built (an image label, or a completed cache directory) is skipped,
// so an unchanged second build only inspects.
package images

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// KeyLabel is the image label holding the build key of the step that produced the image.
const KeyLabel = "dev.rehearse.build-key"

// recipeEpoch changes whenever the way steps are built changes in a way their inputs do not show.
const recipeEpoch = "rehearse-images/1"

// Step is one cached build product: a docker image (Ref set) or a directory of files (Ref empty).
type Step struct {
	// Name identifies the step in logs and names its cache directory; unique within a build.
	Name string
	// Ref is the docker image the step produces, or "" for a file step.
	Ref string
	// Inputs are everything, besides Deps, that determines the output: versions, package lists,
	// file contents, flags.
	Inputs []string
	// Deps are built first; their keys are part of this step's key.
	Deps []*Step
	// Build produces the output. A file step writes into s.Dir; an image step must give the image
	// Ref and the label KeyLabel=s.Key.
	Build func(ctx context.Context, b *Builder, s *Step) error

	// Lock names a resource the step's build must not share with another step's (debootstrap's
	// package cache): steps with the same Lock build one at a time.
	Lock string

	// Key is set by the Builder before Build runs.
	Key string
	// Dir is, for a file step, the directory holding its outputs (set by the Builder).
	Dir string
}

// Result says what happened to one step.
type Result struct {
	Name     string        `json:"name"`
	Ref      string        `json:"ref,omitempty"`
	Key      string        `json:"key"`
	Cached   bool          `json:"cached"`
	Duration time.Duration `json:"duration"`
}

// Builder runs steps in dependency order, skipping those already built with the same key, and the
// dependencies of those, which only a build would need. Steps whose dependencies are ready build at
// the same time, up to Jobs at once; steps that share a Lock
// (debootstrap's package cache) take turns.
type Builder struct {
	Docker Docker
	// CacheDir holds file-step outputs and scratch space.
	CacheDir string
	// Progress receives one line per step start and finish; nil discards.
	Progress io.Writer
	// Force rebuilds every step even when its key is already built.
	Force bool
	// Jobs bounds the steps building at once; 0 means one per CPU.
	Jobs int

	mu      sync.Mutex
	keys    map[*Step]string
	state   map[*Step]*stepState
	locks   map[string]*sync.Mutex
	sem     chan struct{}
	results []Result
}

type stepState struct {
	done chan struct{}
	err  error
}

// Results lists the steps ensured so far, in the order they finished.
func (b *Builder) Results() []Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.results)
}

// Ensure builds steps and their dependencies unless they are already built with the same key.
// Independent steps build concurrently; the first failure cancels the others.
func (b *Builder) Ensure(ctx context.Context, steps ...*Step) error {
	// errgroup cancels the rest on the first failure and returns that failure, not the
	// cancellations it caused.
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range steps {
		g.Go(func() error { return b.ensureTree(ctx, s) })
	}
	return g.Wait()
}

// ensureTree builds s once its dependencies are built; a step asked for twice (a shared
// dependency) is built once and waited for by the others.
func (b *Builder) ensureTree(ctx context.Context, s *Step) error {
	b.mu.Lock()
	if b.state == nil {
		b.state, b.locks, b.keys = map[*Step]*stepState{}, map[string]*sync.Mutex{}, map[*Step]string{}
		jobs := b.Jobs
		if jobs <= 0 {
			jobs = runtime.NumCPU()
		}
		b.sem = make(chan struct{}, jobs)
	}
	st, started := b.state[s]
	if !started {
		st = &stepState{done: make(chan struct{})}
		b.state[s] = st
	}
	b.mu.Unlock()
	if started {
		select {
		case <-st.done:
			return st.err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	st.err = b.build(ctx, s)
	close(st.done)
	return st.err
}

func (b *Builder) build(ctx context.Context, s *Step) error {
	key, err := b.key(s)
	if err != nil {
		return err
	}
	s.Key = key
	// Keys come from inputs alone, so a step already built with its key needs none of its
	// dependencies: images imported from a CI cache are reused without rebuilding the intermediate
	// files (Go binaries) they were made from.
	if !b.Force {
		start := time.Now()
		if b.built(ctx, s) {
			b.record(s, true, start)
			return nil
		}
	}
	if err := b.Ensure(ctx, s.Deps...); err != nil {
		return err
	}
	if s.Lock != "" {
		b.mu.Lock()
		l := b.locks[s.Lock]
		if l == nil {
			l = &sync.Mutex{}
			b.locks[s.Lock] = l
		}
		b.mu.Unlock()
		l.Lock()
		defer l.Unlock()
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	start := time.Now()
	err = b.make(ctx, s)
	<-b.sem
	if err != nil {
		return fmt.Errorf("build %s: %w", s.Name, err)
	}
	b.record(s, false, start)
	return nil
}

// key is s's build key, computed once per Builder for s and its dependencies.
func (b *Builder) key(s *Step) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.keys[s]; !ok {
		if err := computeKeys(b.keys, s); err != nil {
			return "", err
		}
	}
	return b.keys[s], nil
}

func (b *Builder) record(s *Step, cached bool, start time.Time) {
	r := Result{Name: s.Name, Ref: s.Ref, Key: s.Key, Cached: cached, Duration: time.Since(start).Round(time.Millisecond)}
	b.mu.Lock()
	b.results = append(b.results, r)
	b.mu.Unlock()
	if cached {
		b.progress("cached  %-28s %s", s.Name, describe(s))
	} else {
		b.progress("built   %-28s %s in %s", s.Name, describe(s), r.Duration.Round(100*time.Millisecond))
	}
}

// built says whether s's output already exists with s.Key: its image carries the key label, or its
// cache directory is complete (then s.Dir points at it).
func (b *Builder) built(ctx context.Context, s *Step) bool {
	if s.Ref != "" {
		v, ok := b.Docker.ImageLabel(ctx, s.Ref, KeyLabel)
		return ok && v == s.Key
	}
	final := filepath.Join(b.CacheDir, "steps", s.Name, s.Key)
	if _, err := os.Stat(filepath.Join(final, ".complete")); err != nil {
		return false
	}
	s.Dir = final
	return true
}

// make builds s, whose dependencies are built.
func (b *Builder) make(ctx context.Context, s *Step) error {
	if s.Ref != "" {
		b.progress("build   %-28s %s", s.Name, s.Ref)
		oldID, _ := b.Docker.Run(ctx, nil, "image", "inspect", "--format", "{{.Id}}", s.Ref)
		if err := s.Build(ctx, b, s); err != nil {
			return err
		}
		if v, ok := b.Docker.ImageLabel(ctx, s.Ref, KeyLabel); !ok || v != s.Key {
			return fmt.Errorf("step did not produce %s with %s=%s", s.Ref, KeyLabel, s.Key)
		}
		// The superseded image is garbage now (it stays if a container still uses it).
		if newID, _ := b.Docker.Run(ctx, nil, "image", "inspect", "--format", "{{.Id}}", s.Ref); oldID != "" && newID != oldID {
			_, _ = b.Docker.Run(ctx, nil, "image", "rm", oldID)
		}
		return nil
	}
	final := filepath.Join(b.CacheDir, "steps", s.Name, s.Key)
	b.progress("build   %-28s (files)", s.Name)
	tmp := final + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	s.Dir = tmp
	if err := s.Build(ctx, b, s); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(s.Key+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	s.Dir = final
	// Older keys of this step are garbage now.
	if olds, _ := filepath.Glob(filepath.Join(b.CacheDir, "steps", s.Name, "*")); len(olds) > 0 {
		for _, o := range olds {
			if o != final {
				_ = os.RemoveAll(o)
			}
		}
	}
	return nil
}

// ScratchDir returns a fresh temporary directory under the cache (on disk, not a tmpfs) for a step's
// intermediate files; the caller removes it.
func (b *Builder) ScratchDir(name string) (string, error) {
	base := filepath.Join(b.CacheDir, "scratch")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, name+"-")
}

func (b *Builder) progress(format string, args ...any) {
	if b.Progress != nil {
		line := fmt.Sprintf(format+"\n", args...)
		b.mu.Lock()
		defer b.mu.Unlock()
		io.WriteString(b.Progress, line)
	}
}

func describe(s *Step) string {
	if s.Ref != "" {
		return s.Ref
	}
	return "(files)"
}
