package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
			steps, _, err := imageSteps()
			if err != nil {
				return err
			}
			if err := b.Ensure(cmd.Context(), steps...); err != nil {
				return err
			}
			graph, err := images.Graph(steps...)
			if err != nil {
				return err
			}
			built := 0
			for _, r := range b.Results() {
				if !r.Cached {
					built++
				}
			}
			// A step already built does not need its dependencies (the Go builds under an image
			// imported from a CI cache): they are not even looked at.
			notNeeded := ""
			if n := len(graph) - len(b.Results()); n > 0 {
				notNeeded = fmt.Sprintf(", %d not needed", n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "images: %d steps, %d built, %d reused%s, in %s; node image %s\n",
				len(graph), built, len(b.Results())-built, notNeeded, time.Since(start).Round(100*time.Millisecond), nodeimage.Image)
			return nil
		},
	}
	build.Flags().BoolVar(&force, "force", false, "rebuild every step even when it is up to date")
	build.Flags().IntVarP(&jobs, "jobs", "j", 0, "steps built at once (default: one per CPU; 1 builds one after another)")
	build.Flags().BoolVarP(&verbose, "verbose", "v", false, "stream docker build output to stderr")
	cmd.AddCommand(build, newImagesExportCmd(), newImagesImportCmd(), newImagesKeyCmd())
	return cmd
}

// imageSteps are the steps `rehearse images build` ensures, and so those `images export` saves and
// `images key` hashes: the node image's plan and the sample workload's images. perBinary are those
// made from this very executable (the orders image): their keys change with every build of
// rehearse, and they build in seconds.
func imageSteps() (steps, perBinary []*images.Step, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	workloadSteps, err := workloads.ImageSteps(exe, nodeimage.DebianBase())
	if err != nil {
		return nil, nil, err
	}
	// PostgreSQL does not change from run to run: the node image starts with it. The orders image
	// holds this very executable, so it is loaded per run.
	var preload []*images.Step
	for _, s := range workloadSteps {
		switch s.Ref {
		case workloads.PostgresImage:
			preload = append(preload, s)
		case workloads.OrdersImage:
			perBinary = append(perBinary, s)
		}
	}
	return append(nodeimage.NewPlan(preload...).Steps, workloadSteps...), perBinary, nil
}

func newImagesExportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export DIR",
		Short: "Save every built image into DIR (a docker save archive and manifest.json), for a CI cache",
		Long: "Saves the image of every step `rehearse images build` makes (the node image, the images inside it,\n" +
			"the sample workload's) into DIR as one docker save archive (they share layers), with\n" +
			"DIR/manifest.json listing each image's ref, build key, image ID and archive. Every image must be\n" +
			"built with its current key (run `rehearse images build` first). An archive DIR already holds of\n" +
			"the same images is kept, any other removed. `rehearse images import DIR` loads them on another\n" +
			"machine.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			steps, _, err := imageSteps()
			if err != nil {
				return err
			}
			m, err := images.Export(cmd.Context(), images.Docker{}, args[0], steps, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "images: %d exported to %s\n", len(m.Images), filepath.Join(args[0], images.ManifestName))
			return nil
		},
	}
}

func newImagesImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import DIR",
		Short: "Load the images `rehearse images export DIR` saved, checking their build keys",
		Long: "Loads the archive DIR/manifest.json lists with docker load (not when every image is already\n" +
			"present with its key) and checks that each image carries the build key the manifest records\n" +
			"(label " + images.KeyLabel + "). A following `rehearse images build` reuses every image whose\n" +
			"key is still current and builds the rest.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := images.Import(cmd.Context(), images.Docker{}, args[0], cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "images: %d imported from %s\n", len(m.Images), args[0])
			return nil
		},
	}
}

func newImagesKeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print one content key for the images `rehearse images build` makes (a CI cache key)",
		Long: "Prints a hash of the build keys of every step `rehearse images build` makes, computed from their\n" +
			"inputs without building or running anything. It leaves out the images made from this rehearse\n" +
			"executable itself (" + workloads.OrdersImage + "): their keys change with every build of\n" +
			"rehearse, they build in seconds, and with them in the key every commit would miss the cache.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			steps, perBinary, err := imageSteps()
			if err != nil {
				return err
			}
			key, err := cacheKey(steps, perBinary)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
}

// cacheKey is the set key of steps without perBinary (which no other step depends on).
func cacheKey(steps, perBinary []*images.Step) (string, error) {
	steps = slices.DeleteFunc(slices.Clone(steps), func(s *images.Step) bool { return slices.Contains(perBinary, s) })
	return images.SetKey(steps...)
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
