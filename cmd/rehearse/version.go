package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/clusters/nodeimage"
	"github.com/rehearse-dev/rehearse/replay"
)

// versionInfo is what `rehearse version --json` prints: this build, as a run's replay/run.json
// records it, and the kind node image this build makes and expects.
type versionInfo struct {
	replay.Build
	NodeImage  string `json:"node_image"`
	Kubernetes string `json:"kubernetes"`
}

func currentVersion() versionInfo {
	return versionInfo{Build: replay.CurrentBuild(), NodeImage: nodeimage.Image, Kubernetes: nodeimage.KubernetesVersion}
}

func (v versionInfo) write(w io.Writer) {
	ver := v.Version
	if ver == "" {
		ver = "(unknown)"
	}
	fmt.Fprintf(w, "rehearse %s\n", ver)
	if v.Module != "" {
		fmt.Fprintf(w, "  module      %s\n", v.Module)
	}
	switch {
	case v.Revision != "":
		rev := v.Revision
		if v.Modified != nil && *v.Modified {
			rev += " (with uncommitted changes)"
		}
		fmt.Fprintf(w, "  commit      %s\n", rev)
		if v.Time != "" {
			fmt.Fprintf(w, "  built from  a commit of %s\n", v.Time)
		}
	default:
		fmt.Fprintf(w, "  commit      not recorded (go build in a git checkout records it; go run and go test do not)\n")
	}
	if v.Go != "" {
		fmt.Fprintf(w, "  go          %s\n", v.Go)
	}
	fmt.Fprintf(w, "  node image  %s (Kubernetes %s; rehearse images build makes it)\n", v.NodeImage, v.Kubernetes)
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print this build (module version, commit, its time, Go) as a run's replay bundle records it, and the node image it expects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := currentVersion()
			if asJSON {
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
				return err
			}
			v.write(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print it as JSON (the fields of run.json's rehearse, with node_image and kubernetes)")
	return cmd
}
