package images

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Docker runs the docker CLI. Images are built and inspected through the same CLI kind itself uses, so
// whatever engine `docker` points at (DOCKER_HOST, contexts) is the one that gets the images.
type Docker struct {
	// Bin is the docker executable; "docker" when empty.
	Bin string
	// Log receives the combined output of long-running commands (builds); nil discards it.
	Log io.Writer
}

// Command is the docker CLI invocation for args, for callers that stream its output themselves.
func (d Docker) Command(ctx context.Context, args ...string) *exec.Cmd {
	bin := d.Bin
	if bin == "" {
		bin = "docker"
	}
	return exec.CommandContext(ctx, bin, args...)
}

// Run executes docker with args, feeding stdin when non-nil, and returns trimmed stdout. On failure the
// error carries the command and the tail of stderr.
func (d Docker) Run(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := d.Command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", summarize(args), err, tail(stderr.String(), 2000))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// RunStreaming executes docker with its stdout and stderr going to the log writer (for builds).
func (d Docker) RunStreaming(ctx context.Context, stdin io.Reader, args ...string) error {
	cmd := d.Command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stdin = stdin
	out := io.Writer(&stderr)
	if d.Log != nil {
		out = io.MultiWriter(&stderr, d.Log)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker %s: %w: %s", summarize(args), err, tail(stderr.String(), 2000))
	}
	return nil
}

// ImageLabel returns the value of label on image ref, and whether the image exists at all.
func (d Docker) ImageLabel(ctx context.Context, ref, label string) (value string, exists bool) {
	out, err := d.Run(ctx, nil, "image", "inspect", "--format", fmt.Sprintf("{{ index .Config.Labels %q }}", label), ref)
	if err != nil {
		return "", false
	}
	if out == "<no value>" {
		out = ""
	}
	return out, true
}

// ImageSize returns the size in bytes docker reports for ref.
func (d Docker) ImageSize(ctx context.Context, ref string) (int64, error) {
	out, err := d.Run(ctx, nil, "image", "inspect", "--format", "{{ .Size }}", ref)
	if err != nil {
		return 0, err
	}
	var n int64
	_, err = fmt.Sscan(out, &n)
	return n, err
}

func summarize(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
