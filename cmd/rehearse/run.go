package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/runner"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// exitCode carries the CLI contract's exit code out of a command.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }

func newRunCmd() *cobra.Command {
	var (
		out  string
		keep bool
		seed uint64
	)
	cmd := &cobra.Command{
		Use:   "run SCENARIO...",
		Short: "Rehearse scenarios; writes DIR/<scenario>/{summary.json,junit.xml,report.html,results.bin}",
		Long: "Runs each scenario: cluster (reused when a kind cluster of that name exists, else created and\n" +
			"deleted afterwards unless --keep-cluster), the sample workload, load for the whole timeline while the\n" +
			"steps run, then the checks. Exit 0 when every check passed, 1 when one failed or could not measure,\n" +
			"2 when the harness could not run.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var loaded []*scenarios.Loaded
			for _, f := range args {
				l, err := scenarios.LoadFile(f)
				if err != nil {
					return exitCode{2, err.Error()}
				}
				loaded = append(loaded, l)
			}
			worst := 0
			var sums []reports.Summary
			for _, l := range loaded {
				sum, err := runner.Run(cmd.Context(), l, runner.Options{OutDir: out, KeepCluster: keep, Seed: seed, Progress: cmd.ErrOrStderr()})
				code := runner.ExitCode(sum, err)
				worst = max(worst, code)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "rehearse: %s: %v\n", l.Metadata.Name, err)
				}
				if sum != nil {
					sums = append(sums, *sum)
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%d requests, %d failed)\n", sum.Scenario, sum.Verdict, sum.Load.Requests, sum.Load.Failed)
					for _, c := range sum.Checks {
						fmt.Fprintf(cmd.OutOrStdout(), "  %-22s %-5s %s\n", c.Name, c.Status, reports.FirstLine(c.Message))
					}
				}
			}
			if len(sums) > 1 {
				if j, err := reports.JUnit(sums); err == nil {
					_ = os.WriteFile(out+"/junit.xml", j, 0o644)
				}
			}
			if worst != 0 {
				return exitCode{worst, fmt.Sprintf("exit %d", worst)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "out", "directory for reports")
	cmd.Flags().BoolVar(&keep, "keep-cluster", false, "keep a cluster this run created")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "seed of the load's random choices (0: from the clock)")
	return cmd
}
