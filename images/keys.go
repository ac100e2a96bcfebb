package images

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Graph lists every step of the graphs rooted at steps once, each after its dependencies, in a
// deterministic order (depth first, in the order steps and their Deps are given). A step that depends
// on itself, directly or not, is an error.
func Graph(steps ...*Step) ([]*Step, error) {
	var order []*Step
	done := map[*Step]bool{}
	onPath := map[*Step]bool{}
	var visit func(s *Step, path []string) error
	visit = func(s *Step, path []string) error {
		if done[s] {
			return nil
		}
		path = append(path, s.Name)
		if onPath[s] {
			return fmt.Errorf("steps depend on themselves: %s", strings.Join(path, " -> "))
		}
		onPath[s] = true
		for _, d := range s.Deps {
			if err := visit(d, path); err != nil {
				return err
			}
		}
		delete(onPath, s)
		done[s] = true
		order = append(order, s)
		return nil
	}
	for _, s := range steps {
		if err := visit(s, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Keys computes the build key of every step of the graphs rooted at steps, dependencies first, from
// their inputs alone: nothing is built, run or inspected. They are the keys a Builder gives the same
// steps, so they say what an image's KeyLabel must hold for a build to reuse it.
func Keys(steps ...*Step) (map[*Step]string, error) {
	keys := map[*Step]string{}
	if err := computeKeys(keys, steps...); err != nil {
		return nil, err
	}
	return keys, nil
}

// computeKeys adds to keys those of the steps in the graphs of steps it does not hold yet.
func computeKeys(keys map[*Step]string, steps ...*Step) error {
	order, err := Graph(steps...)
	if err != nil {
		return err
	}
	for _, s := range order {
		if _, ok := keys[s]; !ok {
			keys[s] = stepKey(s, func(d *Step) string { return keys[d] })
		}
	}
	return nil
}

// SetKey is one content key for a whole set of steps: a hash of the name, image and key of every step
// in their graphs. It changes exactly when one of those keys does, which makes it a cache key for the
// images those steps produce (what `rehearse images key` prints for CI caches).
func SetKey(steps ...*Step) (string, error) {
	order, err := Graph(steps...)
	if err != nil {
		return "", err
	}
	keys := map[*Step]string{}
	if err := computeKeys(keys, order...); err != nil {
		return "", err
	}
	lines := make([]string, 0, len(order))
	for _, s := range order {
		lines = append(lines, fmt.Sprintf("%s\x00%s\x00%s\n", s.Name, s.Ref, keys[s]))
	}
	// The order the roots were given in is not content.
	slices.Sort(lines)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00set\x00", recipeEpoch)
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// stepKey hashes what determines s's output: the recipe epoch, its name, image and inputs, and the
// name and key of each dependency (depKey gives those).
func stepKey(s *Step, depKey func(*Step) string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", recipeEpoch, s.Name, s.Ref)
	for _, in := range s.Inputs {
		fmt.Fprintf(h, "in\x00%d\x00%s\x00", len(in), in)
	}
	for _, d := range s.Deps {
		fmt.Fprintf(h, "dep\x00%s\x00%s\x00", d.Name, depKey(d))
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}
