package images

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Two binaries: a and b each import a package of their own, and both import shared; a cached
// action (no start time) counts for nothing.
func TestReadActionGraphAttributesCompileAndLink(t *testing.T) {
	at := func(s float64) string {
		return time.Unix(1000, 0).Add(time.Duration(s * float64(time.Second))).UTC().Format(time.RFC3339Nano)
	}
	act := func(id int, mode, pkg string, deps string, start, done float64) string {
		times := ""
		if start >= 0 {
			times = `, "TimeStart": "` + at(start) + `", "TimeDone": "` + at(done) + `"`
		}
		return `{"ID": ` + string(rune('0'+id)) + `, "Mode": "` + mode + `", "Package": "` + pkg + `", "Deps": [` + deps + `]` + times + `}`
	}
	graph := "[" + strings.Join([]string{
		act(0, "build", "shared", "", 0, 4),
		act(1, "build", "example/a", "0,5", 4, 6),
		act(2, "build", "example/b", "0", 4, 5),
		act(3, "link", "example/a", "1", 6, 16),
		act(4, "link", "example/b", "2", 5, 12),
		act(5, "build", "cached", "", -1, 0),
		act(6, "built-in package", "unsafe", "", -1, 0),
	}, ",\n") + "]"
	bt, err := ReadActionGraph(strings.NewReader(graph))
	if err != nil {
		t.Fatal(err)
	}
	s := time.Second
	want := &BuildTimes{
		Wall: 16 * s, Compile: 7 * s, Link: 17 * s, Shared: 4 * s, SharedPackages: 1,
		Binaries: []BinaryTimes{
			{Package: "example/a", Link: 10 * s, Own: 2 * s, OwnPackages: 2, Packages: 3},
			{Package: "example/b", Link: 7 * s, Own: 1 * s, OwnPackages: 1, Packages: 2},
		},
	}
	if d := cmp.Diff(want, bt); d != "" {
		t.Errorf("times (-want +got):\n%s", d)
	}
	var out bytes.Buffer
	bt.Table(&out)
	for _, line := range []string{"| example/a | 10.0 | 2.0 | 2 | 3 |", "| **all (summed)** | **17.0** | **7.0** | | |", "link is 71 % of"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, out.String())
		}
	}
	if _, err := ReadActionGraph(strings.NewReader("{")); err == nil {
		t.Error("a truncated graph was read without an error")
	}
}
