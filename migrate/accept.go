package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
)

// DefaultAcceptWrites is how many items the default acceptance writes and reads back.
const DefaultAcceptWrites = 5

// acceptControls is how many never-written ids the acceptance reads, each of which must read back as
// missing: a version that answers "stored" for anything would otherwise pass.
const acceptControls = 2

// errAccept is a new version failing its acceptance: the system's failure, not the harness's.
type errAccept struct{ msg string }

func (e *errAccept) Error() string { return e.msg }

func acceptFailed(format string, args ...any) error { return &errAccept{fmt.Sprintf(format, args...)} }

// isAcceptFailure says err is a failed acceptance.
func isAcceptFailure(err error) bool {
	var a *errAccept
	return errors.As(err, &a)
}

func acceptProblems(a *scenarios.Accept) []steps.Problem {
	if a == nil {
		return nil
	}
	var ps []steps.Problem
	if a.Writes < 0 {
		ps = append(ps, steps.Problemf("migrate.accept.writes", "must not be negative"))
	}
	if a.ReadPath != "" {
		if _, err := load.ParseTemplate("readPath", a.ReadPath); err != nil {
			ps = append(ps, steps.Problemf("migrate.accept.readPath", "%v", err))
		} else if !strings.Contains(a.ReadPath, "{{.ID}}") || !strings.HasPrefix(a.ReadPath, "/") {
			ps = append(ps, steps.Problemf("migrate.accept.readPath", "%q: want a path that names {{.ID}}, such as /orders/{{.ID}}", a.ReadPath))
		}
	}
	for i, r := range a.Requests {
		f := fmt.Sprintf("migrate.accept.requests[%d]", i)
		if !strings.HasPrefix(r.Path, "/") {
			ps = append(ps, steps.Problemf(f+".path", "%q: want a path such as /healthz", r.Path))
		}
		if r.Method != "" && !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}, r.Method) {
			ps = append(ps, steps.Problemf(f+".method", "%q: want GET, POST, PUT, PATCH, DELETE or HEAD", r.Method))
		}
		if r.Status != 0 && (r.Status < 100 || r.Status > 599) {
			ps = append(ps, steps.Problemf(f+".status", "%d is not an HTTP status", r.Status))
		}
	}
	return ps
}

// accept runs the acceptance of a new version reachable alone at base (its own Service): the
// requests the scenario states, then, when a write target and a read rule are known, items written
// through it that must read back as stored while never-written ids read back as missing. It
// records what it did; a failure is an *errAccept.
func accept(ctx context.Context, env *steps.Env, base, stepName string, m *scenarios.Migrate, rec *steps.Record) error {
	a := m.Accept
	if a != nil && a.Skip {
		rec.Set("acceptance", "skipped")
		return nil
	}
	start := time.Now()
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var did []string
	if a != nil {
		for i, r := range a.Requests {
			method := r.Method
			if method == "" {
				method = http.MethodGet
			}
			code, body, version, err := do(ctx, client, env.Version, method, base+r.Path, r.Body)
			switch {
			case err != nil:
				return acceptFailed("acceptance request %d (%s %s): %v", i+1, method, r.Path, err)
			case r.Status != 0 && code != r.Status, r.Status == 0 && (code < 200 || code > 299):
				return acceptFailed("acceptance request %d (%s %s): status %d%s", i+1, method, r.Path, code, bodyLine(body))
			case r.BodyContains != "" && !strings.Contains(body, r.BodyContains):
				return acceptFailed("acceptance request %d (%s %s): the body lacks %q", i+1, method, r.Path, r.BodyContains)
			case m.Version != "" && version != m.Version:
				return acceptFailed("acceptance request %d (%s %s): answered by version %q, not %q", i+1, method, r.Path, version, m.Version)
			}
		}
		if len(a.Requests) > 0 {
			did = append(did, fmt.Sprintf("%d requests answered as stated", len(a.Requests)))
		}
	}
	writes, readPath, found, ok := acceptWrites(env, a)
	if ok {
		ids, err := writeItems(ctx, client, env, base, stepName, writes, m)
		if err != nil {
			return err
		}
		controls := make([]string, acceptControls)
		for i := range controls {
			controls[i] = fmt.Sprintf("%s-accept-%s-never-%d", env.Accept.RunID, stepName, i)
		}
		missing, err := load.ReadBack(ctx, base, readPath, found, append(slices.Clone(ids), controls...), 4)
		if err != nil {
			return acceptFailed("acceptance: reading back through the new version: %v", err)
		}
		lost := slices.DeleteFunc(slices.Clone(missing), func(id string) bool { return slices.Contains(controls, id) })
		if n := acceptControls - (len(missing) - len(lost)); n > 0 {
			return acceptFailed("acceptance: %d of %d ids never written read back as stored (GET %s): the new version cannot tell a stored item from a missing one", n, acceptControls, readPath)
		}
		if len(lost) > 0 {
			rec.Set("acceptance_lost", lost)
			return acceptFailed("acceptance: the new version acknowledged %d writes and %d of them read back as missing (GET %s): %s", len(ids), len(lost), readPath, strings.Join(lost[:min(len(lost), 3)], ", "))
		}
		did = append(did, fmt.Sprintf("%d writes acknowledged and read back, %d never-written ids missing", len(ids), acceptControls))
	}
	if len(did) == 0 {
		rec.Set("acceptance", "none: no requests stated and no ledger write target with a read rule")
		return nil
	}
	rec.Set("acceptance", strings.Join(did, "; "))
	rec.Set("acceptance_s", float64(time.Since(start).Round(100*time.Millisecond))/float64(time.Second))
	return nil
}

// acceptWrites is the write acceptance to run: how many items, and the read rule (ok false: none).
func acceptWrites(env *steps.Env, a *scenarios.Accept) (n int, readPath string, found load.Found, ok bool) {
	if env.Accept == nil {
		return 0, "", found, false
	}
	n, readPath, found = DefaultAcceptWrites, env.Accept.ReadPath, env.Accept.Found
	if a != nil {
		if a.Writes > 0 {
			n = a.Writes
		}
		if a.ReadPath != "" {
			readPath = a.ReadPath
		}
		if a.Found != nil {
			found = load.Found{Status: a.Found.Status, BodyHasID: a.Found.BodyHasID}
		}
	}
	return n, readPath, found, readPath != ""
}

// writeItems writes n items as the load's ledger target does, through base only; each must be
// acknowledged (the target's expected statuses, else a 2xx).
func writeItems(ctx context.Context, client *http.Client, env *steps.Env, base, stepName string, n int, m *scenarios.Migrate) ([]string, error) {
	t := env.Accept.Write
	pathT, err := load.ParseTemplate("path", t.Path)
	if err != nil {
		return nil, err
	}
	bodyT, err := load.ParseTemplate("body", t.Body)
	if err != nil {
		return nil, err
	}
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-accept-%s-%d", env.Accept.RunID, stepName, i)
		data := struct{ ID, RecentID string }{id, id}
		var path, body strings.Builder
		if err := pathT.Execute(&path, data); err != nil {
			return nil, err
		}
		if err := bodyT.Execute(&body, data); err != nil {
			return nil, err
		}
		code, answer, version, err := do(ctx, client, env.Version, t.Method, base+path.String(), body.String())
		acked := slices.Contains(t.Expect, code) || (len(t.Expect) == 0 && code >= 200 && code <= 299)
		switch {
		case err != nil:
			return nil, acceptFailed("acceptance write %d (%s %s): %v", i+1, t.Method, path.String(), err)
		case !acked:
			return nil, acceptFailed("acceptance write %d (%s %s): status %d%s", i+1, t.Method, path.String(), code, bodyLine(answer))
		case m.Version != "" && version != m.Version:
			return nil, acceptFailed("acceptance write %d: answered by version %q, not %q", i+1, version, m.Version)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// do sends one request and returns its status, body (64 KiB at most) and the version that answered.
func do(ctx context.Context, client *http.Client, version load.Version, method, url, body string) (int, string, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), version.Read(resp.Header, b), nil
}

func bodyLine(body string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(body), "\n")
	if line == "" {
		return ""
	}
	return ": " + line[:min(len(line), 160)]
}
