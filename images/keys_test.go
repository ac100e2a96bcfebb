package images

import (
	"strings"
	"testing"
)

// key is s's key as Keys computes it.
func key(t *testing.T, s *Step) string {
	t.Helper()
	keys, err := Keys(s)
	if err != nil {
		t.Fatal(err)
	}
	return keys[s]
}

func TestStepKeyCoversEveryInput(t *testing.T) {
	base := func() *Step { return &Step{Name: "n", Ref: "r:1", Inputs: []string{"a", "b"}} }
	k := key(t, base())
	variants := map[string]*Step{
		"name":         {Name: "m", Ref: "r:1", Inputs: []string{"a", "b"}},
		"ref":          {Name: "n", Ref: "r:2", Inputs: []string{"a", "b"}},
		"input":        {Name: "n", Ref: "r:1", Inputs: []string{"a", "c"}},
		"input order":  {Name: "n", Ref: "r:1", Inputs: []string{"b", "a"}},
		"input split":  {Name: "n", Ref: "r:1", Inputs: []string{"ab"}},
		"dependency":   {Name: "n", Ref: "r:1", Inputs: []string{"a", "b"}, Deps: []*Step{{Name: "d"}}},
		"no input":     {Name: "n", Ref: "r:1"},
		"extra input":  {Name: "n", Ref: "r:1", Inputs: []string{"a", "b", ""}},
		"renamed file": {Name: "n", Ref: "r:1", Inputs: []string{"a", "b "}},
	}
	for what, s := range variants {
		if key(t, s) == k {
			t.Errorf("changing the %s does not change the key", what)
		}
	}
	if key(t, base()) != k {
		t.Error("key is not deterministic")
	}
}

// graph builds base <- mid <- {top, other}: top and other share mid, which depends on base.
func graph(baseInput string) (base, mid, top, other *Step) {
	base = &Step{Name: "base", Ref: "r/base:1", Inputs: []string{baseInput}}
	mid = &Step{Name: "mid", Inputs: []string{"go build"}, Deps: []*Step{base}}
	top = &Step{Name: "top", Ref: "r/top:1", Inputs: []string{"t"}, Deps: []*Step{mid}}
	other = &Step{Name: "other", Ref: "r/other:1", Inputs: []string{"o"}, Deps: []*Step{mid, base}}
	return
}

func TestKeysWithoutBuilding(t *testing.T) {
	base, mid, top, other := graph("debian 12.1")
	keys, err := Keys(top, other)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Fatalf("%d keys, want one per step of the graph (4)", len(keys))
	}
	for _, s := range []*Step{base, mid, top, other} {
		if keys[s] == "" {
			t.Errorf("no key for %s", s.Name)
		}
		if s.Key != "" || s.Dir != "" {
			t.Errorf("Keys changed step %s (Key %q, Dir %q)", s.Name, s.Key, s.Dir)
		}
	}

	// The same inputs give the same keys, in steps made anew and asked for in another order.
	base2, mid2, top2, other2 := graph("debian 12.1")
	keys2, err := Keys(other2, top2)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*Step{{base, base2}, {mid, mid2}, {top, top2}, {other, other2}} {
		if keys[p[0]] != keys2[p[1]] {
			t.Errorf("%s: key %s, then %s from the same inputs", p[0].Name, keys[p[0]], keys2[p[1]])
		}
	}

	// Changing an input of a dependency changes the key of every step that depends on it, and only
	// theirs.
	base3, mid3, top3, other3 := graph("debian 12.2")
	unrelated := &Step{Name: "unrelated", Ref: "r/u:1", Inputs: []string{"u"}}
	keys3, err := Keys(top3, other3, unrelated)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*Step{{base, base3}, {mid, mid3}, {top, top3}, {other, other3}} {
		if keys[p[0]] == keys3[p[1]] {
			t.Errorf("%s: key unchanged when base's input changed", p[0].Name)
		}
	}
	if k := key(t, &Step{Name: "unrelated", Ref: "r/u:1", Inputs: []string{"u"}}); keys3[unrelated] != k {
		t.Errorf("an unrelated step's key depends on the others")
	}
}

// Keys are the ones a Builder gives the steps it builds.
func TestKeysMatchTheBuilders(t *testing.T) {
	var builds int
	base := fileStep("base", "v1", &builds)
	top := fileStep("top", "t", &builds, base)
	keys, err := Keys(top)
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{CacheDir: t.TempDir()}
	if err := b.Ensure(t.Context(), top); err != nil {
		t.Fatal(err)
	}
	if base.Key != keys[base] || top.Key != keys[top] {
		t.Errorf("built keys %s %s, computed %s %s", base.Key, top.Key, keys[base], keys[top])
	}
}

func TestGraphOrderAndCycles(t *testing.T) {
	base, _, top, other := graph("x")
	order, err := Graph(top, other)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range order {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "base mid top other" {
		t.Errorf("order %q, want dependencies first, each step once", got)
	}
	base.Deps = []*Step{top} // base -> top -> mid -> base
	if _, err := Graph(other); err == nil || !strings.Contains(err.Error(), "depend on themselves") {
		t.Errorf("a cycle: %v", err)
	}
	if _, err := Keys(other); err == nil {
		t.Error("Keys of a cycle did not fail")
	}
}

func TestSetKey(t *testing.T) {
	_, _, top, other := graph("debian 12.1")
	k, err := SetKey(top, other)
	if err != nil {
		t.Fatal(err)
	}
	_, _, top2, other2 := graph("debian 12.1")
	if k2, _ := SetKey(other2, top2); k2 != k {
		t.Errorf("set key %s, then %s for the same steps given in another order", k, k2)
	}
	_, _, top3, other3 := graph("debian 12.2")
	if k3, _ := SetKey(top3, other3); k3 == k {
		t.Error("set key unchanged when a dependency's input changed")
	}
	if k4, _ := SetKey(top); k4 == k {
		t.Error("set key unchanged when a step left the set")
	}
}
