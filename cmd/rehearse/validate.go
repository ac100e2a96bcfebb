package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/runner"
)

func newValidateCmd() *cobra.Command {
	var schema bool
	cmd := &cobra.Command{
		Use:   "validate {SCENARIO | RUNBOOK.md}...",
		Short: "Parse and check scenario files and Markdown runbooks (a runbook's plan is printed); problems name file:line and field (exit 2)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if schema {
				b, err := runner.Schema()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if len(args) == 0 {
				return errors.New("validate: name at least one scenario file")
			}
			bad := 0
			for _, f := range args {
				rb, err := runner.Plan(f)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				if rb != nil {
					rb.WritePlan(cmd.OutOrStdout())
				}
				l, err := runner.Load(f)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				for _, w := range l.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (scenario %s, %d steps, %d checks)\n", f, l.Metadata.Name, len(l.Steps), len(l.Verify))
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d scenario files have problems", bad, len(args))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&schema, "schema", false, "print the JSON Schema of scenario files instead")
	return cmd
}
