package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/reports"
)

func newCompareCmd() *cobra.Command {
	def := reports.DefaultThresholds()
	var (
		format                    string
		p99, rate, restore, drain = percent(def.P99Increase), percent(def.RateDrop), percent(def.RestoreIncrease), percent(def.DrainIncrease)
		failed                    int
		p99Slack, timeSlack       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "compare BASE NEW",
		Short: "Regressions between two runs (exit 1 on a regression, naming it)",
		Long: "Compares two rehearsals. BASE and NEW are each a summary.json, a scenario's report directory\n" +
			"(OUT/<scenario>/) or a suite's (OUT/, a directory per scenario; scenarios are matched by name,\n" +
			"and one found in only one of them is reported, not compared).\n\n" +
			"Per scenario: every check's status (pass → fail or error is a regression, the reverse an\n" +
			"improvement), and the figures below against their thresholds. A figure regresses when it grew\n" +
			"by more than its share AND by more than its slack (so 3 ms → 4 ms is noise, not +33%).\n" +
			"  failed requests            over the run and in each step's window (--max-failed-increase)\n" +
			"  p99 latency                over the run and in each step's window (--max-p99-increase, --p99-slack)\n" +
			"  achieved rate              (--max-rate-drop; the share of the target when targets differ)\n" +
			"  time to restore            rollback drills, canaries and blue-greens rolled back (--max-restore-increase, --time-slack)\n" +
			"  drain time                 node-drain faults (--max-drain-increase, --time-slack)\n\n" +
			"Exit 0 no regression, 1 a regression (named on stderr), 2 bad input (a missing or unreadable\n" +
			"summary, bad flags).",
		Example: "  rehearse compare out-main/ out/                      # two suites\n" +
			"  rehearse compare out-main/smoke out/smoke --format markdown >> \"$GITHUB_STEP_SUMMARY\"\n" +
			"  rehearse compare base.json new.json --max-p99-increase 50% --p99-slack 20ms",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "markdown" {
				return exitCode{2, fmt.Sprintf("--format %q: text or markdown", format)}
			}
			var runs [2][]reports.Summary
			var bad []string
			for i, p := range args {
				s, err := reports.ReadSummaries(p)
				if err != nil {
					bad = append(bad, err.Error())
				}
				runs[i] = s
			}
			if len(bad) > 0 {
				return exitCode{2, strings.Join(bad, "; ")}
			}
			th := reports.Thresholds{P99Increase: float64(p99), P99SlackMS: float64(p99Slack) / float64(time.Millisecond),
				FailedIncrease: failed, RateDrop: float64(rate), RestoreIncrease: float64(restore), DrainIncrease: float64(drain),
				TimeSlackS: timeSlack.Seconds()}
			c := reports.Compare(runs[0], runs[1], th)
			if format == "markdown" {
				if _, err := cmd.OutOrStdout().Write(c.Markdown(args[0], args[1])); err != nil {
					return err
				}
			} else if err := c.Text(cmd.OutOrStdout(), args[0], args[1]); err != nil {
				return err
			}
			if regs := c.Regressions(); len(regs) > 0 {
				var named []string
				for _, r := range regs {
					named = append(named, r.Scenario+": "+r.String())
				}
				what := "regressions"
				if len(regs) == 1 {
					what = "regression"
				}
				return exitCode{1, fmt.Sprintf("%d %s: %s", len(regs), what, strings.Join(named, "; "))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "text or markdown (for a PR comment or $GITHUB_STEP_SUMMARY)")
	f.Var(&p99, "max-p99-increase", "p99 may grow by this much, over the run and in a step's window (20% or 20)")
	f.DurationVar(&p99Slack, "p99-slack", time.Duration(def.P99SlackMS*float64(time.Millisecond)), "a p99 increase under this is noise, whatever its share")
	f.IntVar(&failed, "max-failed-increase", def.FailedIncrease, "failed requests may grow by this many, over the run and in a step's window (default 0: any more is a regression)")
	f.Var(&rate, "max-rate-drop", "the achieved rate may drop by this much")
	f.Var(&restore, "max-restore-increase", "a time to restore (rollback drill, canary or blue-green rolled back) may grow by this much")
	f.Var(&drain, "max-drain-increase", "a node drain's time may grow by this much")
	f.DurationVar(&timeSlack, "time-slack", time.Duration(def.TimeSlackS*float64(time.Second)), "a restore or drain time increase under this is noise")
	return cmd
}

// percent is a share given as a percentage: "20%" or "20" is 0.2.
type percent float64

func (p *percent) String() string {
	return strconv.FormatFloat(float64(*p)*100, 'f', -1, 64) + "%"
}

func (p *percent) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v < 0 {
		return fmt.Errorf("%q: a percentage, like 20%%", s)
	}
	*p = percent(v / 100)
	return nil
}

func (p *percent) Type() string { return "percent" }
