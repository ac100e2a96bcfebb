package main

import (
	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/workloads/orders"
)

// newOrdersCmd runs the sample orders service; the orders image is this binary with entrypoint
// `rehearse orders`, so the workload always matches the rehearse that deploys it.
func newOrdersCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "orders serve|migrate ...",
		Short:              "Run the sample orders service or its migrations (the orders image's entrypoint)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return orders.Main(cmd.Context(), args)
		},
	}
}
