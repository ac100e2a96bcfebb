package clusters

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"sigs.k8s.io/kind/pkg/cluster/constants"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
)

// A kind node is a container on the local engine: losing one is stopping it. The engine is driven
// as kind itself drives it, through its CLI.

// node finds the cluster's node container called name.
func (c *Cluster) node(name string) (nodes.Node, error) {
	ns, err := c.provider.ListNodes(c.Name)
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		if n.String() == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("kind cluster %s has no node %q", c.Name, name)
}

// StopNode kills the node's container as a crash would: no graceful shutdown, no eviction; its
// pods stop with it. A control-plane node is refused: the rehearsal's API server, and the published
// ports the load goes through, live there.
func (c *Cluster) StopNode(ctx context.Context, name string) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	role, err := n.Role()
	if err != nil {
		return err
	}
	if role == constants.ControlPlaneNodeRoleValue {
		return fmt.Errorf("%s is the control-plane node: losing it loses the API server and the load's published ports", name)
	}
	return docker(ctx, "kill", "--signal", "KILL", name)
}

// StartNode starts a node container again (a no-op when it runs); its kubelet rejoins on its own.
func (c *Cluster) StartNode(ctx context.Context, name string) error {
	if _, err := c.node(name); err != nil {
		return err
	}
	return docker(ctx, "start", name)
}

// StoppedNodes names the cluster's node containers that are not running: a node a crashed
// rehearsal lost and never started again.
func (c *Cluster) StoppedNodes(ctx context.Context) ([]string, error) {
	ns, err := c.provider.ListNodes(c.Name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range ns {
		state, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Running}}", n.String()).Output()
		if err != nil {
			return nil, fmt.Errorf("docker inspect %s: %w", n, err)
		}
		if strings.TrimSpace(string(state)) != "true" {
			out = append(out, n.String())
		}
	}
	return out, nil
}

func docker(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
