package main

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

// quietKlog routes client-go's klog output to w (stderr) in klog's own format, less the errors a
// canceled context causes: rehearse cancels its own waits and watches when a step ends (a gate that
// decided, a fault that is over), and client-go logged each one as "Unexpected error when reading
// response body" err="context canceled" in the middle of the run's progress, as if something had
// gone wrong. Any other error, and every other message, still reaches w.
func quietKlog(w io.Writer) {
	base := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(w)))
	klog.SetLogger(logr.New(canceledQuiet{base.GetSink()}))
}

// canceledQuiet drops Error calls whose error is a canceled context.
type canceledQuiet struct{ logr.LogSink }

func (s canceledQuiet) Error(err error, msg string, kv ...any) {
	if err != nil && (errors.Is(err, context.Canceled) || strings.HasSuffix(err.Error(), context.Canceled.Error())) {
		return
	}
	s.LogSink.Error(err, msg, kv...)
}

func (s canceledQuiet) WithValues(kv ...any) logr.LogSink {
	return canceledQuiet{s.LogSink.WithValues(kv...)}
}

func (s canceledQuiet) WithName(name string) logr.LogSink {
	return canceledQuiet{s.LogSink.WithName(name)}
}
