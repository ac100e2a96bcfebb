// Package orders is rehearse's sample application: an HTTP orders service on PostgreSQL whose versions
// follow an expand/contract schema change (v1 → v2 → v3), plus a deliberately faulty release (v2-bad)
// for rollback drills. One binary serves every version and also runs the schema migrations.
package orders

import "fmt"

// Version is a release of the orders service.
type Version string

const (
	// V1 writes and reads `name`.
	V1 Version = "v1"
	// V2 (expand) writes both `name` and `full_name`, reads `name`.
	V2 Version = "v2"
	// V3 (after contract) reads and writes `full_name` only.
	V3 Version = "v3"
	// V2Bad is a deliberately broken v2 for rollback drills: readiness passes, but a share of
	// requests (one in BadEvery) answer 500 without touching the database.
	V2Bad Version = "v2-bad"
)

// BadEvery: V2Bad fails every BadEvery-th request with a 500.
const BadEvery = 4

// ParseVersion accepts the names above.
func ParseVersion(s string) (Version, error) {
	switch v := Version(s); v {
	case V1, V2, V3, V2Bad:
		return v, nil
	}
	return "", fmt.Errorf("unknown version %q (want v1, v2, v3 or v2-bad)", s)
}

func (v Version) writesName() bool { return v != V3 }

// WritesName says whether v still writes the column contract drops.
func (v Version) WritesName() bool     { return v.writesName() }
func (v Version) writesFullName() bool { return v == V2 || v == V2Bad || v == V3 }
func (v Version) readsFullName() bool  { return v == V3 }

// VersionEnv is the environment variable that sets the release a pod serves.
const VersionEnv = "ORDERS_VERSION"
