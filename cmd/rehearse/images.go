package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/clusters/nodeimage"
	"github.com/rehearse-dev/rehearse/images"
	"github.com/rehearse-dev/rehearse/workloads"
)

func newImagesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "images", Short: "Build the images clusters and workloads run, offline"}
	var force, verbose bool
	var jobs int
	build := &cobra.Command{
		Use:   "build",
		Short: "Build every image offline (node image, cluster images); reuses what is already built",
		Long: "Builds, from Debian packages (debootstrap) and Go modules only, the kind node image and every\n" +
			"image a cluster runs. Each step is keyed by its inputs; an unchanged step is not rebuilt.\n" +
			"Cache: $REHEARSE_CACHE_DIR, else $XDG_CACHE_HOME/rehearse, else ~/.cache/rehearse.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var log io.Writer
			if verbose {
				log = cmd.ErrOrStderr()
			}
			b := &images.Builder{
				Docker:   images.Docker{Log: log},
				CacheDir: cacheDir(),
				Progress: cmd.OutOrStdout(),
				Force:    force,
				Jobs:     jobs,
			}
			start := time.Now()
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			workloadSteps, err := workloads.ImageSteps(exe)
			if err != nil {
				return err
			}
			// PostgreSQL does not change from run to run: the node image starts with it. The orders
			// image holds this very executable, so it is loaded per run.
			var preload []*images.Step
			for _, s := range workloadSteps {
				if s.Ref == workloads.PostgresImage {
					preload = append(preload, s)
				}
			}
			if err := b.Ensure(cmd.Context(), append(nodeimage.NewPlan(preload...).Steps, workloadSteps...)...); err != nil {
				return err
			}
			built := 0
			for _, r := range b.Results() {
				if !r.Cached {
					built++
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "images: %d steps, %d built, %d reused, in %s; node image %s\n",
				len(b.Results()), built, len(b.Results())-built, time.Since(start).Round(100*time.Millisecond), nodeimage.Image)
			return nil
		},
	}
	build.Flags().BoolVar(&force, "force", false, "rebuild every step even when it is up to date")
	build.Flags().IntVarP(&jobs, "jobs", "j", 0, "steps built at once (default: one per CPU; 1 builds one after another)")
	build.Flags().BoolVarP(&verbose, "verbose", "v", false, "stream docker build output to stderr")
	cmd.AddCommand(build)
	return cmd
}

func cacheDir() string {
	if d := os.Getenv("REHEARSE_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rehearse")
	}
	return filepath.Join(os.TempDir(), "rehearse-cache")
}
