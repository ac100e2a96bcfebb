package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/faults"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Create, delete and list kind clusters (context kind-NAME)"}
	var (
		name, image, kubeconfig string
		nodePorts               string
		workers                 int
		offline, retain         bool
		wait                    time.Duration
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a kind cluster and wait until every node and system add-on is ready",
		Long: "Creates a kind cluster through kind's Go library. The node image is --image when given; with\n" +
			"--offline rehearse's locally built image (`rehearse images build`); otherwise kind's published\n" +
			"image when present locally, else the local build when present, else the published one (pulled).\n" +
			"Every port of the NodePort range (--node-ports) answers on 127.0.0.1.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			choice := clusters.ImageAuto
			if offline {
				choice = clusters.ImageOffline
			}
			ports, err := clusters.ParsePortRange(nodePorts)
			if err != nil {
				return err
			}
			start := time.Now()
			c, err := clusters.Create(cmd.Context(), clusters.CreateOptions{
				Name: name, Workers: workers, Image: image, Choice: choice, Kubeconfig: kubeconfig, Wait: wait, Retain: retain,
				NodePorts: ports,
				Logger:    kindcmd.NewLogger(),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s ready in %s: %d nodes, image %s, context %s\n",
				c.Name, time.Since(start).Round(100*time.Millisecond), workers+1, c.Image, c.Context)
			return nil
		},
	}
	create.Flags().IntVar(&workers, "workers", 2, "number of worker nodes")
	create.Flags().StringVar(&image, "image", "", "node image (overrides --offline)")
	create.Flags().BoolVar(&offline, "offline", false, "use rehearse's locally built node image")
	create.Flags().StringVar(&nodePorts, "node-ports", clusters.NodePorts.String(), "NodePort range, published on 127.0.0.1")
	create.Flags().BoolVar(&retain, "retain", false, "keep the nodes of a cluster that failed to become ready, for debugging")
	create.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for nodes and add-ons to be ready")

	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete a kind cluster: its node containers, their volumes, its kubeconfig context",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clusters.Delete(cmd.Context(), name, kubeconfig); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s deleted\n", name)
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List kind clusters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := clusters.List()
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	doctor := &cobra.Command{
		Use:   "doctor",
		Short: "Find and repair what a crashed rehearsal left on a cluster (nodes it cordoned and never uncordoned, node containers it stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := clusters.RESTConfig(kubeconfig, clusters.Context(name))
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			var m faults.Stopped
			if cl, err := clusters.Get(name, kubeconfig); err == nil {
				m = cl
			}
			fixed, err := faults.Repair(cmd.Context(), cs, m)
			for _, f := range fixed {
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			if err == nil && len(fixed) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "cluster %s: nothing left behind\n", name)
			}
			return err
		},
	}
	for _, c := range []*cobra.Command{create, del, doctor} {
		c.Flags().StringVar(&name, "name", clusters.DefaultName, "cluster name")
		c.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file to update (default $KUBECONFIG or ~/.kube/config)")
	}
	cmd.AddCommand(create, del, list, doctor)
	return cmd
}
