package runner

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// phaseEvery is how often a long phase says it is still at it.
var phaseEvery = 10 * time.Second

// phase announces a phase that says nothing while it runs (cluster create, image loading, waiting
// for pods): every phaseEvery it prints how long it has been at it and, when status has something
// to say, what it is waiting for; done prints how long it took.
func phase(w io.Writer, what string, status func() string) (done func(err error)) {
	if w == nil {
		return func(error) {}
	}
	start := time.Now()
	progress(w, "%s", what)
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(phaseEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				line := fmt.Sprintf("  still %s (%s)", firstWordLower(what), time.Since(start).Round(time.Second))
				if status != nil {
					if s := status(); s != "" {
						line += ": " + s
					}
				}
				progress(w, "%s", line)
			}
		}
	}()
	return func(err error) {
		close(stop)
		<-finished
		if err == nil {
			progress(w, "  done in %s", time.Since(start).Round(100*time.Millisecond))
		}
	}
}

func firstWordLower(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
