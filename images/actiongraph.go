package images

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// BuildTimes is where the time of one `go build` went, read from its -debug-actiongraph file: how
// long each binary took to link, and how much compiling its packages cost, apart (packages no other
// binary of the build imports) and shared.
type BuildTimes struct {
	// Wall is from the first action's start to the last one's end.
	Wall time.Duration
	// Compile is the time of every compile action added up (CPU-like: two run at once on two cores).
	Compile time.Duration
	// Link is the time of every link action added up.
	Link time.Duration
	// Shared is the compile time of packages more than one binary imports.
	Shared         time.Duration
	SharedPackages int
	Binaries       []BinaryTimes
}

// BinaryTimes is one binary's part of a build.
type BinaryTimes struct {
	Package string
	// Link is its link action's time.
	Link time.Duration
	// Own is the compile time of the packages only this binary imports; OwnPackages counts them.
	Own         time.Duration
	OwnPackages int
	// Packages counts every package it links.
	Packages int
}

type graphAction struct {
	ID        int
	Mode      string
	Package   string
	Deps      []int
	TimeStart time.Time
	TimeDone  time.Time
}

// ReadActionGraph reads the JSON `go build -debug-actiongraph=FILE` writes and attributes its
// compile and link actions to the binaries it linked. Actions that did no work (found in the build
// cache) have no start time and count for nothing.
func ReadActionGraph(r io.Reader) (*BuildTimes, error) {
	var acts []graphAction
	if err := json.NewDecoder(r).Decode(&acts); err != nil {
		return nil, fmt.Errorf("action graph: %w", err)
	}
	byID := make(map[int]*graphAction, len(acts))
	for i := range acts {
		byID[acts[i].ID] = &acts[i]
	}
	took := func(a *graphAction) time.Duration {
		if a.TimeStart.IsZero() || a.TimeDone.IsZero() {
			return 0
		}
		return a.TimeDone.Sub(a.TimeStart)
	}
	bt := &BuildTimes{}
	var first, last time.Time
	users := map[int][]int{} // compile action → the link actions that reach it
	for i := range acts {
		a := &acts[i]
		if !a.TimeStart.IsZero() && (first.IsZero() || a.TimeStart.Before(first)) {
			first = a.TimeStart
		}
		if a.TimeDone.After(last) {
			last = a.TimeDone
		}
		switch a.Mode {
		case "build":
			bt.Compile += took(a)
		case "link":
			bt.Link += took(a)
			seen := map[int]bool{}
			var walk func(id int)
			walk = func(id int) {
				if seen[id] {
					return
				}
				seen[id] = true
				d := byID[id]
				if d == nil {
					return
				}
				if d.Mode == "build" {
					users[id] = append(users[id], a.ID)
				}
				for _, dep := range d.Deps {
					walk(dep)
				}
			}
			for _, dep := range a.Deps {
				walk(dep)
			}
		}
	}
	if !first.IsZero() {
		bt.Wall = last.Sub(first)
	}
	bins := map[int]*BinaryTimes{}
	for i := range acts {
		if a := &acts[i]; a.Mode == "link" {
			bins[a.ID] = &BinaryTimes{Package: a.Package, Link: took(a)}
		}
	}
	for id, links := range users {
		d := took(byID[id])
		for _, l := range links {
			bins[l].Packages++
		}
		if len(links) == 1 {
			bins[links[0]].Own += d
			bins[links[0]].OwnPackages++
		} else {
			bt.Shared += d
			bt.SharedPackages++
		}
	}
	for _, b := range bins {
		bt.Binaries = append(bt.Binaries, *b)
	}
	slices.SortFunc(bt.Binaries, func(a, b BinaryTimes) int { return strings.Compare(a.Package, b.Package) })
	return bt, nil
}

// Add folds another build (a later `go build` of the same module) into this one.
func (bt *BuildTimes) Add(o *BuildTimes) {
	bt.Wall += o.Wall
	bt.Compile += o.Compile
	bt.Link += o.Link
	bt.Shared += o.Shared
	bt.SharedPackages += o.SharedPackages
	bt.Binaries = append(bt.Binaries, o.Binaries...)
}

// Table writes the figures as a Markdown table, a row per binary, then the shared compile and the
// totals.
func (bt *BuildTimes) Table(w io.Writer) {
	s := func(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }
	fmt.Fprintln(w, "| binary | link (s) | compile of its own packages (s) | own packages | packages linked |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, b := range bt.Binaries {
		fmt.Fprintf(w, "| %s | %s | %s | %d | %d |\n", b.Package, s(b.Link), s(b.Own), b.OwnPackages, b.Packages)
	}
	fmt.Fprintf(w, "| compile of packages shared by several | | %s | %d | |\n", s(bt.Shared), bt.SharedPackages)
	fmt.Fprintf(w, "| **all (summed)** | **%s** | **%s** | | |\n", s(bt.Link), s(bt.Compile))
	fmt.Fprintf(w, "\nwall %s s; link is %.0f %% of compile+link time summed\n", s(bt.Wall),
		100*bt.Link.Seconds()/max(1e-9, bt.Link.Seconds()+bt.Compile.Seconds()))
}
