package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/template"
	"time"
)

// ReadBack asks the system under rehearsal, over HTTP, which of the acknowledged ids it no longer
// has: GET baseURL+path (a template with {{.ID}}) answers 200 for a stored write and 404 for a
// missing one. Anything else (another status, no answer after retries) is an error: the check could
// not measure, so it must not pass or fail on a guess.
func ReadBack(ctx context.Context, baseURL, path string, ids []string, parallel int) (missing []string, err error) {
	tmpl, err := template.New("readPath").Option("missingkey=error").Parse(path)
	if err != nil {
		return nil, fmt.Errorf("readPath: %w", err)
	}
	if parallel <= 0 {
		parallel = 8
	}
	client := &http.Client{Timeout: 10 * time.Second}
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
				present, err := readOne(ctx, client, baseURL, tmpl, id)
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
	return missing, firstErr
}

func readOne(ctx context.Context, c *http.Client, base string, tmpl *template.Template, id string) (bool, error) {
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
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return true, nil
		case http.StatusNotFound:
			return false, nil
		}
		last = fmt.Errorf("GET %s: %s (want 200 stored or 404 missing)", url, resp.Status)
	}
	return false, last
}

// WaitAnswering waits until baseURL answers HTTP (any status: the path from here to the system
// works), up to timeout. A NodePort Service can lag its pods' readiness while kube-proxy programs it;
// load started before that would count the harness's impatience as the system's failures.
func WaitAnswering(ctx context.Context, baseURL string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
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
