//go:build e2e

package e2e

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// renderedTimelinePixels renders report.html in headless Chromium (Debian's package), checks the DOM
// holds the timeline and that the report's script ran, and counts the pixels of the screenshot painted in the colour of served
// requests (green bars, also where a step band tints them). Without Chromium the check is skipped,
// unless REHEARSE_REQUIRE_BROWSER is set (make e2e sets it and installs Chromium).
func renderedTimelinePixels(t *testing.T, ctx context.Context, html string) int {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("REHEARSE_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium not found (make browser installs it): %v", err)
		}
		t.Skip("chromium not installed")
	}
	dir := t.TempDir()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + filepath.Join(dir, "profile")}
	run := func(extra ...string) []byte {
		ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append(append(flags, extra...), "file://"+html)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", extra, err)
		}
		return out
	}
	dom := string(run("--dump-dom"))
	if !strings.Contains(dom, `<svg id="timeline"`) || !strings.Contains(dom, `fill="#8bc34a"`) {
		t.Errorf("rendered DOM has no timeline with bars (%d bytes)", len(dom))
	}
	// The latency panel has its axis in ms, and the report's script ran (the page's policy allows it
	// by its hash): hover details are on.
	if !strings.Contains(dom, `id="latency-axis-title"`) || !strings.Contains(dom, `data-hover="ready"`) {
		t.Errorf("rendered DOM lacks the latency axis or the hover script did not run (%d bytes)", len(dom))
	}
	shot := filepath.Join(dir, "report.png")
	run("--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	green := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if g > r+25 && g > bl+40 {
				green++
			}
		}
	}
	return green
}
