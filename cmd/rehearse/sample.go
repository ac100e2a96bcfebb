package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/workloads"
	"github.com/rehearse-dev/rehearse/workloads/orders"
)

func newSampleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sample", Short: "Deploy or delete the orders-postgres sample workload on a kind cluster"}
	var (
		name, kubeconfig, namespace, version string
		nodePort                             int32
		wait                                 time.Duration
	)
	deploy := &cobra.Command{
		Use:   "deploy",
		Short: "Load the sample's images into the cluster's nodes and deploy it; it answers on 127.0.0.1:<node-port>",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clusters.Get(name, kubeconfig)
			if err != nil {
				return err
			}
			start := time.Now()
			if err := c.LoadImages(cmd.Context(), workloads.OrdersImage, workloads.PostgresImage); err != nil {
				return fmt.Errorf("%w (build them with `rehearse images build`)", err)
			}
			cfg, err := c.RESTConfig()
			if err != nil {
				return err
			}
			s, err := workloads.DeploySample(cmd.Context(), cfg, workloads.SampleOptions{
				Namespace: namespace, Version: orders.Version(version), NodePort: nodePort,
			}, wait)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sample %s ready in %s: %s (try: curl -s -XPOST %s/orders -d '{\"id\":\"o-1\",\"name\":\"Ada\"}')\n",
				namespace, time.Since(start).Round(100*time.Millisecond), s.URL(), s.URL())
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete the sample's namespace and its volumes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clusters.Get(name, kubeconfig)
			if err != nil {
				return err
			}
			cfg, err := c.RESTConfig()
			if err != nil {
				return err
			}
			return workloads.DeleteSample(cmd.Context(), cfg, namespace, wait)
		},
	}
	for _, c := range []*cobra.Command{deploy, del} {
		c.Flags().StringVar(&name, "name", clusters.DefaultName, "kind cluster name")
		c.Flags().StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig holding the cluster's context")
		c.Flags().StringVar(&namespace, "namespace", "orders", "namespace of the sample")
		c.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait")
	}
	deploy.Flags().StringVar(&version, "version", "v1", "app version: v1, v2, v3 or v2-bad")
	deploy.Flags().Int32Var(&nodePort, "node-port", int32(clusters.NodePorts.First+1), "NodePort of the app (within the cluster's range)")
	cmd.AddCommand(deploy, del)
	return cmd
}
