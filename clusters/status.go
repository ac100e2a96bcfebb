package clusters

import (
	"fmt"
	"strings"
	"sync"

	"sigs.k8s.io/kind/pkg/log"
)

// StatusLogger is a kind logger that keeps kind's latest status line ("Starting control-plane",
// "Joining worker nodes") for a progress line to show, and discards the rest.
type StatusLogger struct {
	mu   sync.Mutex
	last string
}

// Status is kind's latest status line.
func (l *StatusLogger) Status() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *StatusLogger) note(s string) {
	s = strings.TrimSpace(strings.Trim(strings.TrimSpace(s), "•✓✗ ."))
	if s == "" {
		return
	}
	l.mu.Lock()
	l.last = s
	l.mu.Unlock()
}

func (l *StatusLogger) Warn(m string)                    { l.note(m) }
func (l *StatusLogger) Warnf(f string, a ...any)         { l.note(fmt.Sprintf(f, a...)) }
func (l *StatusLogger) Error(m string)                   { l.note(m) }
func (l *StatusLogger) Errorf(f string, a ...any)        { l.note(fmt.Sprintf(f, a...)) }
func (l *StatusLogger) V(level log.Level) log.InfoLogger { return statusInfo{l, level == 0} }

type statusInfo struct {
	l  *StatusLogger
	on bool
}

func (i statusInfo) Info(m string) {
	if i.on {
		i.l.note(m)
	}
}

func (i statusInfo) Infof(f string, a ...any) {
	if i.on {
		i.l.note(fmt.Sprintf(f, a...))
	}
}

func (i statusInfo) Enabled() bool { return i.on }
