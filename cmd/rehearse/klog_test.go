package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// client-go's errors from a context rehearse canceled itself are not printed; any other error and
// every info message are.
func TestQuietKlogDropsOnlyCanceled(t *testing.T) {
	var buf bytes.Buffer
	quietKlog(&buf)
	t.Cleanup(func() { klog.ClearLogger(); quietKlog(os.Stderr) })
	klog.ErrorS(context.Canceled, "Unexpected error when reading response body")
	klog.ErrorS(fmt.Errorf("read: %w", context.Canceled), "wrapped")
	klog.Background().WithValues("k", "v").Error(errors.New("stream error: context canceled"), "as text")
	if buf.Len() != 0 {
		t.Fatalf("canceled contexts were logged:\n%s", buf.String())
	}
	klog.ErrorS(errors.New("connection refused"), "port-forward failed")
	klog.Background().WithName("x").Error(errors.New("deadline exceeded"), "named")
	klog.InfoS("informational")
	out := buf.String()
	for _, want := range []string{"port-forward failed", "connection refused", "deadline exceeded", "informational"} {
		if !strings.Contains(out, want) {
			t.Errorf("klog output lacks %q:\n%s", want, out)
		}
	}
}
