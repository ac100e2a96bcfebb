package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"
)

// Found tells a stored write from a missing one in a read-back answer. By default a 200 is stored
// and a 404 (or 410) missing; BodyHasID also requires the id in a stored answer's body, for services
// that answer 200 with a "not found" page.
type Found struct {
	Status    []int
	BodyHasID bool
}

// ReadBack asks the system under rehearsal, over HTTP, which of ids it does not have: GET
// baseURL+path (a template with {{.ID}}). Redirects are not followed. An answer that is neither
// stored nor missing (another status, no answer after retries) is an error: the check could not
// measure, so it must not pass or fail on a guess.
func ReadBack(ctx context.Context, baseURL, path string, found Found, ids []string, parallel int) (missing []string, err error) {
	tmpl, err := ParseTemplate("readPath", path)
	if err != nil {
		return nil, fmt.Errorf("readPath: %w", err)
	}
	if len(found.Status) == 0 {
		found.Status = []int{http.StatusOK}
	}
	if parallel <= 0 {
		parallel = 8
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirects}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan string)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				present, err := readOne(ctx, client, baseURL, tmpl, found, id)
				mu.Lock()
				switch {
				case err != nil && firstErr == nil:
					firstErr = err
				case err == nil && !present:
					missing = append(missing, id)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, id := range ids {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	slices.Sort(missing)
	return missing, firstErr
}

func readOne(ctx context.Context, c *http.Client, base string, tmpl *template.Template, found Found, id string) (bool, error) {
	var p strings.Builder
	if err := tmpl.Execute(&p, tmplData{ID: id}); err != nil {
		return false, err
	}
	url := strings.TrimRight(base, "/") + p.String()
	var last error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := c.Do(req)
		if err != nil {
			last = err
			continue
		}
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case rerr != nil:
			last = rerr
			continue
		case resp.Header.Get(ProxyRefusalHeader) != "":
			// Not the system's answer: the API server's proxy found no pod to ask.
			last = fmt.Errorf("GET %s: %s from %s, not the system: %s", url, resp.Status, resp.Header.Get(ProxyRefusalHeader), firstLine(body))
			continue
		case slices.Contains(found.Status, resp.StatusCode):
			return !found.BodyHasID || strings.Contains(string(body), id), nil
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			return false, nil
		}
		last = fmt.Errorf("GET %s: %s (want %v stored or 404 missing)", url, resp.Status, found.Status)
	}
	return false, last
}

// ProxyRefusalHeader marks an answer that came through rehearse's proxy to a Service but from the API
// server (or the proxy itself), not from a pod of the system: no pod was reached.
const ProxyRefusalHeader = "X-Rehearse-Proxy-Refusal"

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(line) > 200 {
		line = line[:200]
	}
	return line
}

// WaitAnswering waits until baseURL answers HTTP (any status: the path from here to the system
// works), up to timeout. A NodePort Service can lag its pods' readiness while kube-proxy programs it;
// load started before that would count the harness's impatience as the system's failures.
func WaitAnswering(ctx context.Context, baseURL string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, CheckRedirect: noRedirects}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer after %s: %w", baseURL, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
