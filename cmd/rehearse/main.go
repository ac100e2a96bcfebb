// Command rehearse rehearses Kubernetes migrations under chaos and reports the truth about them.
// This package only wires command-line flags to the packages that do the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError is the CLI contract's code for "the harness could not run"; commands that know better
// (run: 0 passed, 1 a check failed) return an exitCode.
const exitError = 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// finished tells the watcher below that the context ends because rehearse is done, not because
	// of a signal (a finished command printed "interrupted" as it exited).
	var finished atomic.Bool
	// The first Ctrl-C cancels the run, which then undoes its faults and deletes what it made; a
	// second one is the user's way out of that clean-up, so the default handling comes back.
	go func() {
		<-ctx.Done()
		if finished.Load() {
			return
		}
		stop()
		fmt.Fprintln(os.Stderr, "rehearse: interrupted: cleaning up (Ctrl-C again quits at once and leaves things behind)")
	}()
	// REHEARSE_CPUPROFILE=FILE writes a CPU profile of the whole command (what rehearse itself costs
	// the machine running the load: go tool pprof FILE).
	if f := os.Getenv("REHEARSE_CPUPROFILE"); f != "" {
		if pf, err := os.Create(f); err == nil && pprof.StartCPUProfile(pf) == nil {
			defer func() { pprof.StopCPUProfile(); pf.Close() }()
		} else {
			fmt.Fprintln(os.Stderr, "rehearse: REHEARSE_CPUPROFILE:", f, "could not be written")
		}
	}
	quietKlog(os.Stderr)
	root := newRoot()
	err := root.ExecuteContext(ctx)
	finished.Store(true)
	stop()
	code := 0
	if err != nil {
		fmt.Fprintln(os.Stderr, "rehearse:", err)
		code = exitError
		var ec exitCode
		if errors.As(err, &ec) {
			code = ec.code
		}
	}
	pprof.StopCPUProfile() // os.Exit skips deferred calls
	if code != 0 {
		os.Exit(code)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "rehearse",
		Short:         "Rehearse Kubernetes migrations under chaos and tell the truth about them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newValidateCmd(), newCompareCmd(), newImagesCmd(), newClusterCmd(), newSampleCmd(), newOrdersCmd(), newVersionCmd(), newInitCmd(), newLoadAgentCmd())
	// --version prints what `rehearse version` does.
	var version bool
	root.Flags().BoolVar(&version, "version", false, "print this build (as rehearse version does)")
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if version {
			currentVersion().write(cmd.OutOrStdout())
			return nil
		}
		return cmd.Help()
	}
	return root
}
