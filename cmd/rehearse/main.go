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

// Exit codes of the CLI contract: 0 all passed, 1 a check failed, 2 the harness could not run.
const (
	exitFailed = 1
	exitError  = 2
)

// checkFailed marks an error as "a check failed" (exit 1) rather than "could not run" (exit 2).
type checkFailed struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	var cf checkFailed
	if errors.As(err, &cf) {
		os.Exit(exitFailed)
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
	root.AddCommand(newRunCmd(), newValidateCmd(), newImagesCmd(), newClusterCmd(), newSampleCmd(), newOrdersCmd())
	return root
}
