package nodeimage

import "slices"

// Kubernetes, etcd and CoreDNS are linked into one binary, kube, that runs as the program it is
// called by (the last element of argv[0], as hyperkube once did for Kubernetes' server components),
// or as its first argument when called as kube itself. The node image has kubelet, kubeadm and
// kubectl as links to it, and the component images have kube-apiserver, etcd, /coredns and the
// others: kubeadm, the kubelet and the static pods call them by the names they always used.
// One link instead of nine: linking is the one part of the build that is repeated per binary.

// MultiCallName is the binary's own name.
const MultiCallName = "kube"

// MultiCallPrograms are the names the binary answers to.
var MultiCallPrograms = []string{
	"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
	"kubelet", "kubeadm", "kubectl", "etcd", "coredns",
}

// IsMultiCall says whether a program is one of the binary's.
func IsMultiCall(name string) bool { return slices.Contains(MultiCallPrograms, name) }

// multiCallMain is the binary's main package. Each case is what that program's own main does
// (k8s.io/kubernetes/cmd/*, etcd's server/v3/main.go, CoreDNS's coremain.Run); the blank imports are
// the union of theirs.
//
// One binary holds every program's package-level flags: cAdvisor's (from the kubelet's packages) and
// CoreDNS's on the standard library's flag set, and --version (component-base's verflag) on pflag's.
// Most programs read neither set whole; kubeadm and kube-proxy add them to their own flags, and CoreDNS
// parses the first. Each of those three gets only the flags its own binary has (kubeadm adds -v and
// -vmodule itself), so that their command lines and --help are what they were
// (e2e TestMultiCallKeepsEachProgramsFlags holds them to it).
const multiCallMain = `// Command kube is Kubernetes' components, etcd and CoreDNS in one binary (built by rehearse): it
// runs as the program named by its argv[0], or by its first argument.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	_ "time/tzdata" // for CronJob time zones (kube-apiserver, kube-controller-manager)

	"github.com/coredns/coredns/coremain"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's client auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubeadm "k8s.io/kubernetes/cmd/kubeadm/app"
	kubeadmerrors "k8s.io/kubernetes/cmd/kubeadm/app/util/errors"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
)

// stdFlags are the standard library's flags each of these programs' own binary has.
var stdFlags = map[string][]string{
	"kube-proxy": {"boot_id_file", "machine_id_file"},
	"kubeadm":    {},
	"coredns":    {"conf", "plugins", "pidfile", "version", "quiet", "dns.port", "p"},
}

func main() {
	name := filepath.Base(os.Args[0])
	if name == "kube" && len(os.Args) > 1 {
		os.Args = os.Args[1:]
		name = filepath.Base(os.Args[0])
	}
	if keep, ok := stdFlags[name]; ok {
		onlyStdFlags(keep)
	}
	if name == "kubeadm" {
		pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)
	}
	switch name {
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kube-proxy":
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kubeadm":
		kubeadmerrors.HandleError(kubeadm.Run())
	case "kubectl":
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	case "etcd":
		etcdmain.Main(os.Args)
	case "coredns":
		coremain.Run()
	default:
		fmt.Fprintf(os.Stderr, "kube: run as one of %s (by that name, or as its first argument), not %q\n", strings.Join(programs, ", "), name)
		os.Exit(2)
	}
}

var programs = []string{PROGRAMS}

func onlyStdFlags(keep []string) {
	set := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	for _, name := range keep {
		if f := flag.CommandLine.Lookup(name); f != nil {
			set.Var(f.Value, f.Name, f.Usage)
		}
	}
	flag.CommandLine = set
}
`
