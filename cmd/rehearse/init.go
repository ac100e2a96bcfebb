package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/runner"
)

func newInitCmd() *cobra.Command {
	var out, name string
	cmd := &cobra.Command{
		Use:   "init {CHART | KUSTOMIZATION | MANIFESTS} [-o FILE] [--name NAME]",
		Short: "Write a starting scenario for your own system from a chart, a kustomization or manifests: it validates and runs as written, and says in comments what to fill in",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				base := strings.TrimSuffix(filepath.Base(filepath.Clean(args[0])), filepath.Ext(args[0]))
				name = strings.Trim(strings.Map(func(r rune) rune {
					switch {
					case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
						return r
					case r >= 'A' && r <= 'Z':
						return r + 'a' - 'A'
					}
					return '-'
				}, base), "-")
				if name == "" {
					name = "my-system"
				}
			}
			where := out
			if where == "" || where == "-" {
				where = "scenario.yaml" // paths relative to the working directory
			}
			b, err := runner.Init(args[0], name, where)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists: rehearse init does not write over a file", out)
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: check it with rehearse validate %s\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the scenario to FILE (default: standard output)")
	cmd.Flags().StringVar(&name, "name", "", "the scenario's name (default: from the source's name)")
	return cmd
}
