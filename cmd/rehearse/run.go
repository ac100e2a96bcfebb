package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/replay"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/runner"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/verify"
)

// exitCode carries the CLI contract's exit code out of a command.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }

// runScenario runs one scenario (the tests replace it: a real run needs a cluster).
var runScenario = runner.Run

func newRunCmd() *cobra.Command {
	var (
		out       string
		keep      bool
		reuse     bool
		seed      uint64
		replayDir string
		ro        runner.Options
	)
	cmd := &cobra.Command{
		Use:   "run {SCENARIO... | --replay DIR}",
		Short: "Rehearse scenarios; writes DIR/<scenario>/{summary.json,summary.md,junit.xml,report.html,results.bin}",
		Long: "Runs each scenario: cluster (reused when a kind cluster of that name exists, else created and\n" +
			"deleted afterwards unless --keep-cluster; or an existing cluster with --context), the workload, load\n" +
			"for the whole timeline while the steps run, then the checks. Writes DIR/<scenario>/{summary.json,\n" +
			"summary.md,junit.xml,report.html,results.bin,ledger.tsv,metrics.prom} and prints where; for several\n" +
			"scenarios also DIR/junit.xml and DIR/summary.md for the suite.\n" +
			"Exit 0 when every check passed, 1 when one failed or could not measure, 2 when the harness could not run.\n" +
			"A context other than kind-* must be named with --allow-context: a rehearsal changes the cluster.\n" +
			"Each scenario's directory also holds replay/, what reproduces the run (the scenario file as run, the\n" +
			"manifests it names, run.json: seed, run ID, rehearse's version, images, command line); --replay DIR\n" +
			"(DIR/<scenario> or its replay/) reruns that scenario with that seed into a new directory.",
		Args: func(cmd *cobra.Command, args []string) error {
			if replayDir != "" && len(args) > 0 {
				return exitCode{2, fmt.Sprintf("--replay reruns the scenario its bundle holds; give no scenario file with it (given: %s)", strings.Join(args, " "))}
			}
			if replayDir != "" {
				return nil
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ro.Args = os.Args
			var loaded []*scenarios.Loaded
			if replayDir != "" {
				if cmd.Flags().Changed("seed") {
					return exitCode{2, "--replay reruns the bundle's seed; --seed cannot be given with it (another seed: rehearse run FILE --seed N)"}
				}
				ro.OutDir = out
				l, err := openReplay(cmd.ErrOrStderr(), replayDir, &ro, cmd.Flags().Changed("out"))
				if err != nil {
					return err
				}
				loaded, seed = append(loaded, l), ro.Replay.Run.Seed
			}
			for _, f := range args {
				l, err := runner.Load(f)
				if err != nil {
					return exitCode{2, err.Error()}
				}
				for _, w := range l.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
				}
				loaded = append(loaded, l)
			}
			worst := 0
			var sums []reports.Summary
			var suite []reports.SuiteEntry
			if reuse && !keep {
				// One cluster for the whole suite: each scenario keeps it; the kind clusters this
				// invocation created are deleted at its end (Ctrl-C included).
				before, _ := clusters.List()
				defer func() {
					now, _ := clusters.List()
					for _, n := range now {
						if !slices.Contains(before, n) && usedCluster(loaded, n) {
							fmt.Fprintf(cmd.ErrOrStderr(), "rehearse: deleting kind cluster %s (created for this suite)\n", n)
							if err := clusters.Delete(context.WithoutCancel(cmd.Context()), n, clusterKubeconfig(loaded, n, ro.Kubeconfig)); err != nil {
								fmt.Fprintf(cmd.ErrOrStderr(), "rehearse: %v\n", err)
							}
						}
					}
				}()
			}
			for _, l := range loaded {
				if cmd.Context().Err() != nil {
					break // interrupted: the scenario that was running has cleaned up; start no other
				}
				opts := ro
				opts.OutDir, opts.KeepCluster, opts.Seed, opts.Progress = out, keep || reuse, seed, cmd.ErrOrStderr()
				sum, err := runScenario(cmd.Context(), l, opts)
				code := runner.ExitCode(sum, err)
				worst = max(worst, code)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "rehearse: %s: %v\n", l.Metadata.Name, err)
				}
				if sum == nil {
					// The suite's junit.xml still shows the scenario, with why it could not run.
					sums = append(sums, reports.Summary{Scenario: l.Metadata.Name, Verdict: reports.VerdictError, ScenarioHash: l.Hash,
						ScenarioFile: runner.RelativeFile(l.File),
						Checks:       []verify.Result{{Name: "harness", Status: verify.Error, Message: fmt.Sprint(err)}}})
					suite = append(suite, reports.SuiteEntry{Summary: sums[len(sums)-1]})
					fmt.Fprintf(cmd.OutOrStdout(), "%s: error (it could not run)\n  reports: none written\n", l.Metadata.Name)
				}
				dir := opts.RunDir(l.Metadata.Name)
				if sum != nil {
					sums = append(sums, *sum)
					suite = append(suite, reports.SuiteEntry{Summary: *sum, Dir: dir})
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%d requests, %d failed)\n", sum.Scenario, sum.Verdict, sum.Load.Requests, sum.Load.Failed)
					for _, c := range sum.Checks {
						fmt.Fprintf(cmd.OutOrStdout(), "  %-22s %-5s %s\n", c.Name, c.Status, reports.FirstLine(c.Message))
					}
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", reportsLine(dir))
				}
				if _, err := os.Stat(filepath.Join(dir, runner.BundleFile)); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "  replay: %s\n", replay.ShellQuote([]string{"rehearse", "run", "--replay", dir}))
				}
			}
			if len(loaded) > 1 {
				if err := writeSuite(out, sums, suite); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "rehearse: suite reports: %v\n", err)
					worst = 2
				}
				fmt.Fprintf(cmd.OutOrStdout(), "suite: %s\n", reportsLine(out))
			}
			if worst != 0 {
				return exitCode{worst, fmt.Sprintf("exit %d", worst)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "out", "directory for reports")
	cmd.Flags().BoolVar(&keep, "keep-cluster", false, "keep a cluster this run created")
	cmd.Flags().BoolVar(&reuse, "reuse", false, "several scenarios share their cluster: created once, images loaded once, each scenario's workload in its own namespace; deleted at the end unless --keep-cluster")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "seed of the load's and the faults' random choices (0: from the clock)")
	cmd.Flags().StringVar(&replayDir, "replay", "", "rerun a run from its replay bundle (DIR: the run's directory OUT/<scenario>, or its replay/) with its seed; reports in OUT/<scenario>-replay-<time>, or --out's DIR/<scenario>")
	cmd.Flags().StringVar(&ro.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&ro.Context, "context", "", "run on the existing cluster of this kubeconfig context instead of the scenario's cluster")
	cmd.Flags().StringArrayVar(&ro.AllowContexts, "allow-context", nil, "a non-kind context the rehearsal may change (repeatable)")
	cmd.Flags().StringVar(&ro.MetricsAddr, "metrics-addr", "", "serve the run's Prometheus metrics on HOST:PORT/metrics while it runs (port 0 picks one)")
	return cmd
}

// reportFiles are the files a run writes, in the order reportsLine names them.
var reportFiles = []string{"summary.md", "summary.json", "junit.xml", "report.html", "results.bin", "ledger.tsv", "metrics.prom"}

// reportsLine says where a scenario's (or a suite's) reports were written: the directory and the
// report files found in it (a file a failed run did not write is not named).
func reportsLine(dir string) string {
	var found []string
	for _, f := range reportFiles {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
			found = append(found, f)
		}
	}
	if len(found) == 0 {
		return "reports: none written in " + dir
	}
	return fmt.Sprintf("reports in %s%c: %s", filepath.Clean(dir), filepath.Separator, strings.Join(found, " "))
}

// writeSuite writes the suite's junit.xml (a testsuite per scenario) and summary.md into out.
func writeSuite(out string, sums []reports.Summary, entries []reports.SuiteEntry) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	j, err := reports.JUnit(sums)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "junit.xml"), j, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "summary.md"), reports.SuiteMarkdown(entries), 0o644)
}

// usedCluster says whether a scenario of the suite runs on the kind cluster called name.
func usedCluster(loaded []*scenarios.Loaded, name string) bool {
	return slices.ContainsFunc(loaded, func(l *scenarios.Loaded) bool { return kindName(l) == name })
}

func kindName(l *scenarios.Loaded) string {
	if l.Cluster.Provider == "existing" {
		return ""
	}
	if l.Cluster.Name == "" {
		return clusters.DefaultName
	}
	return l.Cluster.Name
}

// clusterKubeconfig is the kubeconfig the suite's scenarios on cluster name wrote it into.
func clusterKubeconfig(loaded []*scenarios.Loaded, name, flag string) string {
	if flag != "" {
		return flag
	}
	for _, l := range loaded {
		if kindName(l) == name {
			return l.Cluster.Kubeconfig
		}
	}
	return ""
}

// openReplay prepares `run --replay DIR`: the bundle read back whole (or refused, exit 2), its
// scenario loaded from the bundle, and the run's directory — OUT/<scenario>-replay-<time> beside the
// run it replays unless --out was given. What the run was given on its command line that is not
// reused (the cluster's flags) is printed for the user to give again.
func openReplay(w io.Writer, dir string, ro *runner.Options, outGiven bool) (*scenarios.Loaded, error) {
	b, err := replay.Open(dir)
	if err != nil {
		return nil, exitCode{2, err.Error()}
	}
	l, err := runner.LoadReplay(b)
	if err != nil {
		return nil, exitCode{2, fmt.Sprintf("replay bundle %s: its scenario does not load:\n%v", b.Dir, err)}
	}
	ro.Replay = b
	if !outGiven {
		// Beside the run's directory, however DIR was given (replay/ from inside the run's directory:
		// the run's directory is ".", whose parent filepath.Dir does not find).
		runDir := b.RunDir()
		if base := filepath.Base(runDir); base == "." || base == ".." {
			if runDir, err = filepath.Abs(runDir); err != nil {
				return nil, exitCode{2, err.Error()}
			}
		}
		ro.Dir = filepath.Join(filepath.Dir(runDir), l.Metadata.Name+"-replay-"+time.Now().Format("20060102-150405"))
	}
	if same(ro.RunDir(l.Metadata.Name), b.RunDir()) {
		return nil, exitCode{2, fmt.Sprintf("the replay would write over the run it replays (%s): give another --out", b.RunDir())}
	}
	r := b.Run
	fmt.Fprintf(w, "rehearse: replaying run %s of %s (seed %d, scenario sha256 %.12s) from %s; reports in %s\n",
		r.RunID, r.Scenario, r.Seed, r.ScenarioHash, b.Dir, ro.RunDir(l.Metadata.Name))
	if r.Command != "" {
		fmt.Fprintf(w, "rehearse: the run was: cd %s && %s\n", replay.ShellQuote([]string{r.WorkingDir}), r.Command)
	}
	then := clusterFlags(r.Options.Kubeconfig, r.Options.Context, r.Options.AllowContexts)
	if now := clusterFlags(ro.Kubeconfig, ro.Context, ro.AllowContexts); then != now {
		if now == "" {
			now = "none"
		}
		fmt.Fprintf(w, "rehearse: the run was given %s, which a replay does not reuse (given now: %s); to replay on that cluster, give them again\n", then, now)
	}
	return l, nil
}

// clusterFlags are the flags that point a run at a cluster, as they would be typed.
func clusterFlags(kubeconfig, context string, allow []string) string {
	var f []string
	if kubeconfig != "" {
		f = append(f, "--kubeconfig", kubeconfig)
	}
	if context != "" {
		f = append(f, "--context", context)
	}
	for _, a := range allow {
		f = append(f, "--allow-context", a)
	}
	return replay.ShellQuote(f)
}

// same says whether two paths name one directory.
func same(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}
