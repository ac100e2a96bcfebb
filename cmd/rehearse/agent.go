package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/load"
)

// newLoadAgentCmd runs a load agent: the entrypoint of the generator pods a rehearsal with
// load.from: cluster starts (the orders image is this binary, so the agent always speaks the
// protocol of the rehearse that starts it).
func newLoadAgentCmd() *cobra.Command {
	var listen, dir string
	var echo bool
	cmd := &cobra.Command{
		Use:    "load-agent",
		Short:  "Send a share of a rehearsal's load from inside the cluster (the generator pods' entrypoint)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if echo {
				return load.ServeEcho(cmd.Context(), listen)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return load.ServeAgent(cmd.Context(), listen, dir, os.Getenv(load.AgentTokenEnv), func(f string, a ...any) {
				fmt.Fprintf(cmd.ErrOrStderr(), f+"\n", a...)
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", ":"+strconv.Itoa(load.AgentPort), "address to listen on")
	cmd.Flags().StringVar(&dir, "dir", os.TempDir(), "directory for the agent's results and ledger")
	cmd.Flags().BoolVar(&echo, "echo", false, "serve a target that answers every request at once instead (make bench-cluster's fixed target)")
	return cmd
}
