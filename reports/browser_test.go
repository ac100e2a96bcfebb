package reports

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// TestHTMLRendersInChromium opens a ten-minute run's report.html in headless Chromium at #t=402 (a
// second of the drain) and reads the DOM after the report's script ran: the charts are there, the
// script was allowed to run (its hash is in the page's policy), took over the hover texts and shows
// that second's details. Skipped without chromium on PATH, unless REHEARSE_REQUIRE_BROWSER is set.
func TestHTMLRendersInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("REHEARSE_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium not found: %v", err)
		}
		t.Skip("chromium not installed")
	}
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := HTML(f, longRun(1432)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--window-size=1100,1400", "--dump-dom", "file://"+page+"#t=402")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	doc, err := html.Parse(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	svg := byID(doc, "timeline")
	if svg == nil {
		t.Fatalf("rendered DOM has no svg#timeline (%d bytes)", len(out))
	}
	if attr(svg, "data-hover") != "ready" {
		t.Errorf("the report's script did not run (blocked by the page's policy?): svg attributes %v", svg.Attr)
	}
	for _, id := range []string{"requests-axis-title", "latency-axis-title", "versions-axis-title", "versions-legend"} {
		if byID(doc, id) == nil {
			t.Errorf("rendered DOM lacks #%s", id)
		}
	}
	if n := len(findAll(svg, tagClass("g", "band"))); n != 6 {
		t.Errorf("%d bands rendered, want 6", n)
	}
	if n := len(findAll(svg, tagClass("g", "fault"))); n != 2 {
		t.Errorf("%d fault bands rendered, want 2", n)
	}
	if n := len(findAll(svg, tagClass("path", "version"))); n != 3 {
		t.Errorf("%d version areas rendered, want 3", n)
	}
	if n := len(findAll(doc, tagClass("tr", "group"))); n != 2 {
		t.Errorf("%d failure groups rendered, want 2", n)
	}
	// The script took the hover texts (no double tooltip) and shows the second the address names.
	hits := findAll(findAll(svg, tagClass("g", "hits"))[0], tagClass("rect", ""))
	if len(hits) != 600 || len(findAll(hits[0], tagClass("title", ""))) != 0 {
		t.Errorf("%d hover targets; the first still has its <title>: the script did not take them", len(hits))
	}
	if attr(svg, "data-shown") != "402" {
		t.Errorf("#t=402 shows second %q", attr(svg, "data-shown"))
	}
	tip := byID(doc, "tip")
	if tip == nil {
		t.Fatal("no #tip")
	}
	got := text(tip)
	for _, want := range []string{"+6:42 (12:06:42)", "failed 40 (10 not sent)", "p99 850 ms", "v2 200 (100%)", "in flight: drain-w1 (fault/node-drain)"} {
		if !strings.Contains(got, want) {
			t.Errorf("hover box lacks %q: %q", want, got)
		}
	}
	for _, a := range tip.Attr {
		if a.Key == "hidden" {
			t.Error("hover box is hidden")
		}
	}
	if c := findAll(svg, tagClass("line", "cursor")); len(c) != 1 || !hasClass(c[0], "on") {
		t.Error("no cursor on the second shown")
	}
}
