//go:build e2e

package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/clusters"
)

// TestDeleteLeavesNothing runs last (files run in name order): it deletes the shared cluster and
// checks that no container, network or volume of it remains.
func TestDeleteLeavesNothing(t *testing.T) {
	if shared == nil {
		t.Fatal("no shared cluster")
	}
	if err := shared.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	shared = nil
	for _, c := range dockerLines("ps", "-a", "--format", "{{.Names}}") {
		if strings.HasPrefix(c, clusterName+"-") {
			t.Errorf("container %s is left behind", c)
		}
	}
	if c := dockerLines("ps", "-a", "-q", "--filter", "label=io.x-k8s.kind.cluster="+clusterName); len(c) > 0 {
		t.Errorf("containers labelled for cluster %s are left: %v", clusterName, c)
	}
	others, err := clusters.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(others) == 0 && slices.Contains(dockerLines("network", "ls", "--format", "{{.Name}}"), "kind") {
		t.Errorf("docker network kind is left behind with no kind cluster using it")
	}
	for _, v := range dockerLines("volume", "ls", "-q") {
		if !volumesBefore[v] {
			t.Errorf("docker volume %s appeared during the suite and is left behind", v)
		}
	}
}
