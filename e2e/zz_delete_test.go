//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rehearse-dev/rehearse/clusters"
)

// leftAfterDelete names what of the shared cluster remains once it was deleted (TestMain asks, after
// every test): a container, the kind network with no cluster using it, a volume that appeared
// during the suite.
func leftAfterDelete() []string {
	var left []string
	for _, c := range dockerLines("ps", "-a", "--format", "{{.Names}}") {
		if strings.HasPrefix(c, clusterName+"-") {
			left = append(left, fmt.Sprintf("container %s", c))
		}
	}
	if c := dockerLines("ps", "-a", "-q", "--filter", "label=io.x-k8s.kind.cluster="+clusterName); len(c) > 0 {
		left = append(left, fmt.Sprintf("containers labelled for cluster %s: %v", clusterName, c))
	}
	others, err := clusters.List()
	if err != nil {
		return append(left, err.Error())
	}
	if len(others) == 0 && slices.Contains(dockerLines("network", "ls", "--format", "{{.Name}}"), "kind") {
		left = append(left, "docker network kind, with no kind cluster using it")
	}
	for _, v := range dockerLines("volume", "ls", "-q") {
		if !volumesBefore[v] {
			left = append(left, fmt.Sprintf("docker volume %s, which appeared during the suite", v))
		}
	}
	return left
}
