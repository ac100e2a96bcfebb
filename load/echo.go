package load

import (
	"context"
	"net"
	"net/http"
	"time"
)

// EchoVersion is the version an echo target says.
const EchoVersion = "echo"

// ServeEcho serves a target that answers every request at once (201, its version in VersionHeader,
// no body) on addr until ctx ends: a fixed target for measuring the load path itself, from the host
// and from load agents (make bench-cluster).
func ServeEcho(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(VersionHeader, EchoVersion)
		w.WriteHeader(http.StatusCreated)
	})}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
