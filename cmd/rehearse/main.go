// Command rehearse rehearses Kubernetes migrations under chaos and reports the truth about them.
// This package only wires command-line flags to the packages that do the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError is the CLI contract's code for "the harness could not run"; commands that know better
// (run: 0 passed, 1 a check failed) return an exitCode.
const exitError = 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C cancels the run, which then undoes its faults and deletes what it made; a
	// second one is the user's way out of that clean-up, so the default handling comes back.
	go func() {
		<-ctx.Done()
		stop()
		fmt.Fprintln(os.Stderr, "rehearse: interrupted: cleaning up (Ctrl-C again quits at once and leaves things behind)")
	}()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "rehearse:", err)
	var ec exitCode
	if errors.As(err, &ec) {
		os.Exit(ec.code)
	}
	os.Exit(exitError)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "rehearse",
		Short:         "Rehearse Kubernetes migrations under chaos and tell the truth about them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newValidateCmd(), newCompareCmd(), newImagesCmd(), newClusterCmd(), newSampleCmd(), newOrdersCmd())
	return root
}
