package load

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// The seed's random streams. The plan's stream draws only the targets, so the sequence of requests
// is the seed's alone: what the system answered (which writes were acknowledged, and when) cannot
// shift it. Which acknowledged id a {{.RecentID}} reads is drawn from a stream of its own.
const (
	planStream   = 0x5eed
	recentStream = 0x2ece
)

// planner is a run's request sequence: request n (from 1) is the n-th target drawn from the seed's
// plan stream, with the id <RunID>-<n>.
type planner struct {
	rng     *rand.Rand
	targets []compiled
	total   int
	runID   string
	seq     uint64
	share   Share // the requests this planner hands out; the others' are drawn and skipped
}

func newPlanner(cfg Config) (*planner, error) {
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("load: no targets")
	}
	p := &planner{rng: rand.New(rand.NewPCG(cfg.Seed, planStream)), runID: cfg.RunID}
	for _, t := range cfg.Targets {
		if t.Weight <= 0 {
			t.Weight = 1
		}
		c := compiled{Target: t, recent: strings.Contains(t.Path+t.Body, "RecentID")}
		var err error
		if c.path, err = ParseTemplate(t.Name, t.Path); err != nil {
			return nil, fmt.Errorf("target %s path: %w", t.Name, err)
		}
		if c.body, err = ParseTemplate(t.Name, t.Body); err != nil {
			return nil, fmt.Errorf("target %s body: %w", t.Name, err)
		}
		c.pathF, c.bodyF = newFiller(c.path, t.Path), newFiller(c.body, t.Body)
		p.targets = append(p.targets, c)
		p.total += t.Weight
	}
	return p, nil
}

// next is the next request's target and id: of the share's requests, when it has one (the others'
// targets are drawn all the same, so each request has the target it has in the whole plan).
func (p *planner) next() (compiled, string) {
	for {
		c := p.pick()
		p.seq++
		if _, mine := p.share.Local(p.seq - 1); mine {
			return c, fmt.Sprintf("%s-%d", p.runID, p.seq)
		}
	}
}

func (p *planner) pick() compiled {
	n := p.rng.IntN(p.total)
	for _, c := range p.targets {
		if n < c.Weight {
			return c
		}
		n -= c.Weight
	}
	return p.targets[len(p.targets)-1]
}

// Planned is one request as a run plans it from its seed and run ID.
type Planned struct {
	Seq    uint64 // from 1: the number the id ends with
	Target string
	Method string
	ID     string
	// Path and Body are the target's templates with the id filled in; {{.RecentID}} is left as
	// written: a recently acknowledged id is chosen when the request is sent.
	Path, Body string
}

// Plan is the first n requests a run with cfg sends, in the order their ids are numbered: the same
// Seed plans the same targets in the same order, and RunID only prefixes the ids. Only Targets,
// Seed and RunID are read. Two things are decided as the run goes, from what the system answered:
// which acknowledged id a {{.RecentID}} reads, and a request whose target reads {{.RecentID}} while
// no write has been acknowledged yet, which is sent as the first ledger target instead (same id).
func Plan(cfg Config, n int) ([]Planned, error) {
	p, err := newPlanner(cfg)
	if err != nil {
		return nil, err
	}
	out := make([]Planned, 0, n)
	for range n {
		c, id := p.next()
		data := tmplData{ID: id, RecentID: "{{.RecentID}}"}
		var path, body strings.Builder
		if err := c.pathF.fill(&path, data); err != nil {
			return nil, err
		}
		if err := c.bodyF.fill(&body, data); err != nil {
			return nil, err
		}
		out = append(out, Planned{Seq: p.seq, Target: c.Name, Method: c.Method, ID: id, Path: path.String(), Body: body.String()})
	}
	return out, nil
}
