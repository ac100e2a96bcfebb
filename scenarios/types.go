// Package scenarios owns scenario files: strict parsing (unknown fields are errors), validation with
// errors that name file:line and field, human durations and rates, the JSON Schema editors use, and
// the shipped example scenarios (*.yaml in this directory). A scenario keeps the bytes it was parsed
// from, and can be run from a copy whose files are elsewhere (ParseRelocated: a replay bundle).
package scenarios

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rehearse-dev/rehearse/load"
)

// APIVersion and Kind head every scenario file.
const (
	APIVersion = "rehearse/v1alpha1"
	Kind       = "Scenario"
)

// Scenario is one rehearsal: a cluster, a workload, load, steps on a timeline, and checks.
type Scenario struct {
	APIVersion string              `yaml:"apiVersion" json:"apiVersion" doc:"always rehearse/v1alpha1"`
	Kind       string              `yaml:"kind" json:"kind" doc:"always Scenario"`
	Metadata   Metadata            `yaml:"metadata" json:"metadata"`
	Cluster    Cluster             `yaml:"cluster" json:"cluster"`
	Workload   Workload            `yaml:"workload" json:"workload"`
	Load       Load                `yaml:"load" json:"load"`
	Steps      []Step              `yaml:"steps,omitempty" json:"steps,omitempty"`
	Runbook    string              `yaml:"runbook,omitempty" json:"runbook,omitempty" doc:"a Markdown runbook (FILE.md) whose shell blocks run as host command steps after this file's own steps, in its directory (its yaml rehearse block, if it has one, is not used: this file says the cluster, workload, load and checks)"`
	Verify     map[string]CheckArg `yaml:"verify" json:"verify" doc:"checks to run, by name"`
}

// Metadata names the scenario.
type Metadata struct {
	Name string `yaml:"name" json:"name" doc:"lower-case letters, digits and dashes; names the output directory"`
}

// Cluster says where the rehearsal runs.
type Cluster struct {
	Provider   string `yaml:"provider" json:"provider" enum:"kind,existing" doc:"kind: create (or reuse) a kind cluster; existing: a kubeconfig context"`
	Name       string `yaml:"name,omitempty" json:"name,omitempty" doc:"kind cluster name (default rehearse)"`
	Workers    int    `yaml:"workers,omitempty" json:"workers,omitempty" doc:"kind worker nodes (default 2)"`
	Kubeconfig string `yaml:"kubeconfig,omitempty" json:"kubeconfig,omitempty"`
	Context    string `yaml:"context,omitempty" json:"context,omitempty" doc:"kubeconfig context (existing clusters)"`
}

// Workload is the system under rehearsal: the built-in sample or the user's own manifests.
type Workload struct {
	Sample      string         `yaml:"sample,omitempty" json:"sample,omitempty" enum:"orders-postgres"`
	Version     string         `yaml:"version,omitempty" json:"version,omitempty" doc:"initial version of the sample app"`
	Replicas    *Replicas      `yaml:"replicas,omitempty" json:"replicas,omitempty" doc:"the sample's replica counts"`
	Replication string         `yaml:"replication,omitempty" json:"replication,omitempty" enum:"async,sync" doc:"the sample's replication: async (default: a commit returns once the primary has it) or sync (synchronous_commit = on with synchronous_standby_names ANY 1 (*): a commit returns once a standby has flushed it; with no standby connected, writes wait and fail)"`
	Manifests   []string       `yaml:"manifests,omitempty" json:"manifests,omitempty" doc:"files or directories of YAML (relative to the scenario file), applied in order; objects without a namespace go to rehearse-<scenario>"`
	Kustomize   string         `yaml:"kustomize,omitempty" json:"kustomize,omitempty" doc:"a kustomization directory (a base or an overlay, relative to the scenario file), built in-process as kubectl kustomize builds it; its objects are deployed as manifests are"`
	Helm        *HelmChart     `yaml:"helm,omitempty" json:"helm,omitempty" doc:"a local Helm chart installed as a release (through Helm's Go SDK; its dependencies vendored in charts/)"`
	Images      []string       `yaml:"images,omitempty" json:"images,omitempty" doc:"image archives (docker save, relative to the scenario file) loaded into every kind node"`
	LocalImages []string       `yaml:"localImages,omitempty" json:"localImages,omitempty" doc:"images already built on this machine's Docker (e.g. rehearse.local/orders:dev, by rehearse images build), loaded into every kind node"`
	Checksum    *Checksum      `yaml:"checksum,omitempty" json:"checksum,omitempty" doc:"your own manifests: command run in each replica pod; its output is that replica's data checksum (replica-checksums compares them)"`
	Namespace   *NamespaceMeta `yaml:"namespace,omitempty" json:"namespace,omitempty" doc:"labels and annotations of the rehearsal's namespace (rehearse-<scenario>), set when the run creates it: what a cluster's admission reads there, e.g. pod-security.kubernetes.io/enforce, istio-injection, or with the PodNodeSelector and PodTolerationRestriction admission plugins scheduler.alpha.kubernetes.io/node-selector and .../defaultTolerations to rehearse on one node pool"`
}

// NamespaceMeta is what the rehearsal's namespace carries besides rehearse's own label
// (app.kubernetes.io/part-of: rehearse, which stays).
type NamespaceMeta struct {
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty" doc:"labels of the namespace"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty" doc:"annotations of the namespace"`
}

// Own says whether the workload is one's own (manifests, a kustomization or a chart), not the sample.
func (w *Workload) Own() bool {
	return w.Sample == "" && (len(w.Manifests) > 0 || w.Kustomize != "" || w.Helm != nil)
}

// HelmChart is a chart installed as the workload's release.
type HelmChart struct {
	Chart   string            `yaml:"chart" json:"chart" doc:"a local chart: a directory or a .tgz (relative to the scenario file), its dependencies vendored in charts/ (nothing is downloaded)"`
	Release string            `yaml:"release,omitempty" json:"release,omitempty" doc:"the release's name (default: the scenario's name)"`
	Values  []string          `yaml:"values,omitempty" json:"values,omitempty" doc:"values files (helm -f), relative to the scenario file"`
	Set     map[string]string `yaml:"set,omitempty" json:"set,omitempty" doc:"values (helm --set KEY=VALUE), over the files"`
}

// ReleaseName is the release's name: release, or the scenario's name.
func (h *HelmChart) ReleaseName(scenario string) string {
	if h.Release != "" {
		return h.Release
	}
	return scenario
}

// HelmUpgrade is a helm upgrade of the workload's release: the install's values files and set,
// then these over them; the install's chart unless another is named.
type HelmUpgrade struct {
	Chart  string            `yaml:"chart,omitempty" json:"chart,omitempty" doc:"the chart to upgrade to (default: the workload's)"`
	Values []string          `yaml:"values,omitempty" json:"values,omitempty" doc:"values files over the install's"`
	Set    map[string]string `yaml:"set,omitempty" json:"set,omitempty" doc:"values (--set KEY=VALUE) over the install's and the files'"`
}

// Replicas size the sample: app pods, and database members (a primary and streaming replicas).
type Replicas struct {
	App int `yaml:"app,omitempty" json:"app,omitempty" doc:"app pods (default 3)"`
	DB  int `yaml:"db,omitempty" json:"db,omitempty" doc:"database members, the primary included (default 3; 2 puts one on each of two workers, so that a drain of either is not blocked by the database's disruption budget while its evicted member waits for its node-bound volume)"`
}

// AppOr is the app's replicas, or def when not given.
func (r *Replicas) AppOr(def int) int {
	if r == nil || r.App == 0 {
		return def
	}
	return r.App
}

// DBOr is the database's members, or def when not given.
func (r *Replicas) DBOr(def int) int {
	if r == nil || r.DB == 0 {
		return def
	}
	return r.DB
}

// Load is the synthetic HTTP traffic that runs for the whole timeline.
type Load struct {
	Rate    Rate     `yaml:"rate" json:"rate" doc:"requests per second, e.g. 50/s or 3000/m"`
	Stages  []Stage  `yaml:"stages,omitempty" json:"stages,omitempty" doc:"stepped rates; after the last stage the rate stays"`
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"per-request timeout (default 5s)"`
	BaseURL string   `yaml:"baseURL,omitempty" json:"baseURL,omitempty" doc:"http://127.0.0.1:PORT (default: the sample's NodePort)"`
	Service string   `yaml:"service,omitempty" json:"service,omitempty" doc:"your own manifests: the workload's Service the load goes to: from the host, a NodePort Service (http://127.0.0.1:<its node port>); from the cluster, any Service (by its in-cluster name)"`
	// From says where the load is sent from: this process on the host (through a node port on
	// loopback), or load agents in pods of the cluster (load.Agent), each sending its share of the
	// one plan to the Service by its in-cluster name.
	From string `yaml:"from,omitempty" json:"from,omitempty" enum:"host,cluster" doc:"host: this process sends the load through a node port on 127.0.0.1; cluster: generator pods in the rehearsal's namespace send it to the Service by its in-cluster name (default: host on a local kind cluster, cluster on any other)"`
	// Generators is how many load agents send the load from the cluster.
	Generators int      `yaml:"generators,omitempty" json:"generators,omitempty" doc:"with from: cluster, how many generator pods share the load, spread across nodes (default 1); request n goes to pod n mod generators"`
	Targets    []Target `yaml:"targets" json:"targets"`
	// MaxInFlight caps concurrent requests, as a client's connection pool does; when the system is
	// slower than rate × latency allows, the rate falls short (and load-achieved says so).
	MaxInFlight int `yaml:"maxInFlight,omitempty" json:"maxInFlight,omitempty" doc:"most requests in flight at once (default 256)"`
	// Tail keeps load and observation going after the last step: a release that breaks seconds after
	// its rollout must not pass because the load stopped with the step.
	Tail        *Duration   `yaml:"tail,omitempty" json:"tail,omitempty" doc:"load goes on this long after the last step ends (default 10s)"`
	Lateness    Duration    `yaml:"lateness,omitempty" json:"lateness,omitempty" doc:"a request not sent within this of its scheduled time fails as not sent (default 1s)"`
	Connections Connections `yaml:"connections,omitempty" json:"connections,omitempty" doc:"how clients use connections (default: none reused for new requests after 1s)"`
	// VersionHeader names the response header that says which version answered: the short form of
	// version: {header: NAME}.
	VersionHeader string `yaml:"versionHeader,omitempty" json:"versionHeader,omitempty" doc:"response header naming the version that answered (default X-App-Version); short for version: {header: NAME}"`
	// Version says where an answer says which version served it, for an app that says it in its body.
	Version *VersionSource `yaml:"version,omitempty" json:"version,omitempty" doc:"where an answer says which version served it: one of header, json or body (default header X-App-Version); gates, served-version, rollback-drill and the report's version shares read it, and an answer it cannot be read from counts as no version"`
	// ClientRetries: a request the load client's transport had to resend (its reused connection was
	// closed before the answer) fails by default, as it does for a client that does not resend.
	ClientRetries string `yaml:"clientRetries,omitempty" json:"clientRetries,omitempty" enum:"fail,allow" doc:"fail (default): a request resent after its connection closed before the response counts as failed; allow: your clients retry idempotent requests, so it counts as served (still reported as retried)"`
}

// VersionSource is where a version is read: exactly one of its fields.
type VersionSource struct {
	Header string `yaml:"header,omitempty" json:"header,omitempty" doc:"a response header's name"`
	JSON   string `yaml:"json,omitempty" json:"json,omitempty" doc:"a field of a JSON body: version, or build.version (dots go into objects, numbers into arrays); only the body's first 4096 bytes are read"`
	Body   string `yaml:"body,omitempty" json:"body,omitempty" doc:"a regular expression over the body whose first group is the version, such as <h1>v(\\d+)</h1>; only the body's first 4096 bytes are read"`
}

// VersionReader is where the load reads versions: load.version, load.versionHeader, or the default
// header. It is called on a validated scenario (a bad pattern or path reads nothing).
func (l *Load) VersionReader() load.Version {
	switch {
	case l.Version != nil && l.Version.JSON != "":
		p, _ := load.ParseJSONPath(l.Version.JSON)
		return load.Version{JSON: p}
	case l.Version != nil && l.Version.Body != "":
		re, _ := load.CompileBodyPattern(l.Version.Body)
		return load.Version{Body: re}
	case l.Version != nil && l.Version.Header != "":
		return load.HeaderVersion(l.Version.Header)
	case l.VersionHeader != "":
		return load.HeaderVersion(l.VersionHeader)
	}
	return load.HeaderVersion(load.VersionHeader)
}

// Connections is the client population's use of connections: through kube-proxy each new connection
// picks an endpoint, so recycled connections bring traffic to pods that joined during the run.
type Connections struct {
	MaxAge  Duration `yaml:"maxAge,omitempty" json:"maxAge,omitempty" doc:"a connection takes no new request after this age (default 1s)"`
	Fresh   bool     `yaml:"fresh,omitempty" json:"fresh,omitempty" doc:"a new connection for every request (no keep-alive)"`
	Clients int      `yaml:"clients,omitempty" json:"clients,omitempty" doc:"independent clients sharing the requests, each with its own connections (default 16): new pods get a fair share, not the luck of one connection"`
}

// DefaultTail is load.tail when not given.
const DefaultTail = 10 * time.Second

// Stage holds a rate for a while.
type Stage struct {
	Rate     Rate     `yaml:"rate" json:"rate"`
	Duration Duration `yaml:"duration" json:"duration"`
}

// Target is one kind of request, chosen with probability weight/sum(weights).
type Target struct {
	Name   string `yaml:"name" json:"name"`
	Method string `yaml:"method" json:"method" enum:"GET,POST,PUT,PATCH,DELETE,HEAD"`
	Path   string `yaml:"path" json:"path" doc:"path under baseURL; may use {{.ID}} and {{.RecentID}}"`
	Weight int    `yaml:"weight,omitempty" json:"weight,omitempty" doc:"default 1"`
	Body   string `yaml:"body,omitempty" json:"body,omitempty" doc:"request body template; {{.ID}} is a unique id"`
	Ledger bool   `yaml:"ledger,omitempty" json:"ledger,omitempty" doc:"record acknowledged writes for acked-writes-durable"`
	Expect []int  `yaml:"expect,omitempty" json:"expect,omitempty" doc:"statuses that count as success (default any 2xx); redirects are never followed"`
}

// Step is one event on the timeline: exactly one of wait, migrate, fault, rollback, exec, scale or run.
type Step struct {
	Name     string    `yaml:"name" json:"name"`
	At       At        `yaml:"at,omitempty" json:"at,omitempty" doc:"start concurrently at an offset: 30s (from the load's start), STEP+5s (after STEP starts) or STEP.end+5s (after STEP ends); default: once every earlier step has ended"`
	Wait     Duration  `yaml:"wait,omitempty" json:"wait,omitempty"`
	Migrate  *Migrate  `yaml:"migrate,omitempty" json:"migrate,omitempty"`
	Fault    *Fault    `yaml:"fault,omitempty" json:"fault,omitempty"`
	Rollback *Rollback `yaml:"rollback,omitempty" json:"rollback,omitempty"`
	Exec     *Exec     `yaml:"exec,omitempty" json:"exec,omitempty"`
	Scale    *Scale    `yaml:"scale,omitempty" json:"scale,omitempty"`
	Run      *Run      `yaml:"run,omitempty" json:"run,omitempty" doc:"a command line run by bash on this machine, with a kubeconfig of the rehearsal's cluster only and kubectl on its PATH"`
	// The sample's database topology: a planned switchover, and a failover after the primary is gone.
	Switchover *Switchover `yaml:"switchover,omitempty" json:"switchover,omitempty" doc:"the sample: a planned change of primary (fence the primary, let the new one replay everything, promote it, point the write Service at it, rejoin the old one as a replica)"`
	Failover   *Failover   `yaml:"failover,omitempty" json:"failover,omitempty" doc:"the sample: once the primary stops answering, promote the most advanced replica and point the write Service at it; the former primary rejoins as a replica when it comes back"`
	// Chain (not in YAML) ties steps that an operator runs one after another and stops at the first
	// that fails: a runbook's blocks. A step of a chain does not start once an earlier step of the
	// same chain has failed or erred; it is reported as not run.
	Chain string `yaml:"-" json:"-"`
}

// DefaultRunTimeout is how long a host command may take when run.timeout is not given.
const DefaultRunTimeout = 5 * time.Minute

// Run is a host command: a command line run by `bash -euo pipefail -c` on the machine running the
// rehearsal, in the scenario file's directory, with KUBECONFIG naming a file that holds the rehearsal's
// cluster only, kubectl on its PATH, REHEARSE_NAMESPACE and REHEARSE_RUN_ID. A non-zero exit fails the
// step (the system or the runbook failed); a timeout or a command that cannot start is a harness error.
type Run struct {
	Command      string            `yaml:"command" json:"command" doc:"the command line (bash -euo pipefail -c); may span lines"`
	Env          map[string]string `yaml:"env,omitempty" json:"env,omitempty" doc:"environment variables added to the command's"`
	Timeout      Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"the command is killed (its whole process group) and the step errs after this (default 5m)"`
	ExpectExit   *int              `yaml:"expectExit,omitempty" json:"expectExit,omitempty" doc:"the exit code that means success (default 0)"`
	AllowContext bool              `yaml:"allowContext,omitempty" json:"allowContext,omitempty" doc:"let the command name a kubeconfig, context or server of its own (refused by default: a rehearsal must never reach a cluster other than its own)"`
	// Where a runbook block came from (not in YAML): its heading, its file:line, and the source line
	// of each line of Command (for problems at the right line).
	Heading string `yaml:"-" json:"-"`
	Source  string `yaml:"-" json:"-"`
	Lines   []int  `yaml:"-" json:"-"`
	// Dir is where a runbook's block runs when a scenario file names the runbook: the runbook's own
	// directory, where its relative paths point ("" = the scenario's).
	Dir string `yaml:"-" json:"-"`
}

// TimeoutOr is the command's timeout, or DefaultRunTimeout.
func (r *Run) TimeoutOr() time.Duration {
	if r.Timeout.Duration > 0 {
		return r.Timeout.Duration
	}
	return DefaultRunTimeout
}

// Expected is the exit code that means success.
func (r *Run) Expected() int {
	if r.ExpectExit != nil {
		return *r.ExpectExit
	}
	return 0
}

// Scale sets the replicas of a Deployment or StatefulSet and waits until exactly that many pods are
// left and ready (scaling to 0 takes a service down: a rehearsal of an outage).
type Scale struct {
	Target   string `yaml:"target" json:"target" doc:"KIND/NAME: deployment/NAME or statefulset/NAME"`
	Replicas *int   `yaml:"replicas" json:"replicas"`
}

// Migrate changes the workload.
type Migrate struct {
	Strategy string `yaml:"strategy" json:"strategy" enum:"rolling,blue-green,canary,schema"`
	Target   string `yaml:"target" json:"target" doc:"KIND/NAME, e.g. deployment/orders"`
	Version  string `yaml:"version,omitempty" json:"version,omitempty" doc:"the sample: the app version to move to (v1, v2, v3, v2-bad); your own workload: the value of the version header the new release answers with (gates and served-version read it)"`
	Step     string `yaml:"step,omitempty" json:"step,omitempty" doc:"schema step: expand, backfill or contract"`
	Down     bool   `yaml:"down,omitempty" json:"down,omitempty" doc:"schema: run the step's down migration"`
	// What the change changes (the sample changes its version; one's own workload an image, env, a
	// manifest or a patch).
	Container  string            `yaml:"container,omitempty" json:"container,omitempty" doc:"the container image/env/args change (default: the first)"`
	Image      string            `yaml:"image,omitempty" json:"image,omitempty" doc:"the container's new image"`
	Env        map[string]string `yaml:"env,omitempty" json:"env,omitempty" doc:"environment variables to set in the container"`
	Args       []string          `yaml:"args,omitempty" json:"args,omitempty" doc:"the container's new args (replacing its args)"`
	Manifest   string            `yaml:"manifest,omitempty" json:"manifest,omitempty" doc:"rolling: a file with the new version of the target (server-side applied); canary: a file with the target's new version, whose pod template the canary runs; blue-green: green's own Deployment"`
	Patch      string            `yaml:"patch,omitempty" json:"patch,omitempty" doc:"a strategic merge patch of the target (YAML or JSON): rolling patches it, blue-green's green and the canary are copies of it patched"`
	Kustomize  string            `yaml:"kustomize,omitempty" json:"kustomize,omitempty" doc:"rolling: a kustomization directory (another overlay) whose objects are the new version (server-side applied)"`
	Helm       *HelmUpgrade      `yaml:"helm,omitempty" json:"helm,omitempty" doc:"rolling: a helm upgrade of the workload's release, with values over the install's (or another chart)"`
	Timeout    Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"how long a rollout may take before it counts as stalled (default 5m)"`
	Partitions []int             `yaml:"partitions,omitempty" json:"partitions,omitempty" doc:"rolling a StatefulSet: its rollingUpdate partition, step by step (e.g. [2, 1, 0]: the highest ordinal first); each step waits until the pods at or above it run the new revision and are ready; the last must be 0"`
	// Blue-green and canary.
	Service string   `yaml:"service,omitempty" json:"service,omitempty" doc:"blue-green: the Service whose selector switches; canary: the Service it joins, kept from it until it passed its acceptance (the sample: orders)"`
	Smoke   *Smoke   `yaml:"smoke,omitempty" json:"smoke,omitempty" doc:"blue-green and canary: the test the new version must pass, on a Service of its own, before any user reaches it"`
	Accept  *Accept  `yaml:"accept,omitempty" json:"accept,omitempty" doc:"blue-green and canary: what the new version must do alone, on a Service of its own, before any user reaches it (default: when the load has a ledger write target, 5 writes read back as stored)"`
	Keep    Duration `yaml:"keep,omitempty" json:"keep,omitempty" doc:"blue-green: blue stays up this long after a good switch, then is scaled to 0"`
	Weights []int    `yaml:"weights,omitempty" json:"weights,omitempty" doc:"canary: the share of replicas (percent) the canary gets, step by step, e.g. [10, 50, 100]"`
	Hold    Duration `yaml:"hold,omitempty" json:"hold,omitempty" doc:"canary: how long each weight holds before its gate; blue-green: the gate window after the switch (default 10s)"`
	Gate    Gate     `yaml:"gate,omitempty" json:"gate,omitempty" doc:"what the new version's live traffic must show in each gate window"`
	Expect  string   `yaml:"expect,omitempty" json:"expect,omitempty" enum:"promoted,rolled-back" doc:"blue-green, canary: promoted (default), or rolled-back to rehearse the safety net with a bad release"`
	Within  Duration `yaml:"within,omitempty" json:"within,omitempty" doc:"an automatic rollback must restore service within this (default 30s)"`
}

// Gate is what a new version's live traffic must show in a gate window: at least MinRequests
// answered by it (a gate with no traffic to judge errs, it never passes), an error rate at most
// MaxErrorRate (failures nobody answered count against the new version), and a p99 within P99.
type Gate struct {
	MaxErrorRate float64  `yaml:"maxErrorRate,omitempty" json:"maxErrorRate,omitempty" doc:"largest share of failed requests (default 0)"`
	P99          Duration `yaml:"p99,omitempty" json:"p99,omitempty" doc:"bound on the new version's p99 latency (default: none)"`
	MinRequests  int      `yaml:"minRequests,omitempty" json:"minRequests,omitempty" doc:"fewest requests the new version must answer in the window (default 20)"`
	Probe        *Probe   `yaml:"probe,omitempty" json:"probe,omitempty" doc:"canary: judge the canary by GETs sent to its pods alone (a Service of theirs), not by versions its answers say: for an app that says none"`
}

// Probe is a canary gate's own traffic: GETs of Path at Rate to a Service of the canary's pods alone,
// and to one of the stable pods alone.
type Probe struct {
	Path string `yaml:"path" json:"path" doc:"the path to GET, such as /healthz or /"`
	Rate Rate   `yaml:"rate" json:"rate" doc:"GETs a second to each track, such as 10/s"`
}

// Smoke is a pre-switch test: Requests GETs of Path, each of which must answer 2xx from the new
// version.
type Smoke struct {
	Path     string `yaml:"path,omitempty" json:"path,omitempty" doc:"default: / (the sample: /orders?limit=1)"`
	Requests int    `yaml:"requests,omitempty" json:"requests,omitempty" doc:"default 20"`
	Skip     bool   `yaml:"skip,omitempty" json:"skip,omitempty" doc:"switch without a smoke test (rehearses a runbook that has none)"`
}

// Accept is the acceptance a new version must pass alone before any user reaches it. By default,
// when the load has a ledger write target and a read rule is known (acked-writes-durable's readPath
// and found, or the sample's), Writes items are written the way that target writes, through the new
// version only, and each must read back as stored, while ids never written read back as missing.
type Accept struct {
	Writes   int             `yaml:"writes,omitempty" json:"writes,omitempty" doc:"how many items are written and read back (default 5)"`
	ReadPath string          `yaml:"readPath,omitempty" json:"readPath,omitempty" doc:"where an item reads back, with {{.ID}} (default: acked-writes-durable's readPath; the sample: /orders/{{.ID}})"`
	Found    *Found          `yaml:"found,omitempty" json:"found,omitempty" doc:"what a stored item answers (default: acked-writes-durable's found, else 200)"`
	Requests []AcceptRequest `yaml:"requests,omitempty" json:"requests,omitempty" doc:"requests of your own the new version must answer as stated"`
	Skip     bool            `yaml:"skip,omitempty" json:"skip,omitempty" doc:"no acceptance (rehearses a runbook that has none)"`
}

// AcceptRequest is one acceptance probe of one's own.
type AcceptRequest struct {
	Method       string `yaml:"method,omitempty" json:"method,omitempty" enum:"GET,POST,PUT,PATCH,DELETE,HEAD" doc:"default GET"`
	Path         string `yaml:"path" json:"path" doc:"path on the new version's own Service"`
	Body         string `yaml:"body,omitempty" json:"body,omitempty"`
	Status       int    `yaml:"status,omitempty" json:"status,omitempty" doc:"the status wanted (default: any 2xx)"`
	BodyContains string `yaml:"bodyContains,omitempty" json:"bodyContains,omitempty" doc:"text the answer's body must contain"`
}

// Fault injects a failure.
type Fault struct {
	Type string `yaml:"type" json:"type" enum:"pod-kill,node-drain,node-loss"`
	// pod-kill
	Selector  string    `yaml:"selector,omitempty" json:"selector,omitempty" doc:"pod-kill: label selector of the pods"`
	Namespace string    `yaml:"namespace,omitempty" json:"namespace,omitempty" doc:"pod-kill: the pods' namespace (default: the workload's)"`
	Mode      string    `yaml:"mode,omitempty" json:"mode,omitempty" enum:"one,count,percent,all" doc:"pod-kill: how many of the matching pods (default one; count with count:, percent with percent:)"`
	Count     int       `yaml:"count,omitempty" json:"count,omitempty" doc:"pod-kill: this many pods"`
	Percent   int       `yaml:"percent,omitempty" json:"percent,omitempty" doc:"pod-kill: this share of the pods (rounded up)"`
	Grace     *Duration `yaml:"grace,omitempty" json:"grace,omitempty" doc:"pod-kill: termination grace period; 0s is SIGKILL (default: the pod's own)"`
	Every     Duration  `yaml:"every,omitempty" json:"every,omitempty" doc:"pod-kill: kill again at this interval, for for:"`
	For       Duration  `yaml:"for,omitempty" json:"for,omitempty" doc:"pod-kill with every: how long to go on killing; node-loss: how long the node stays down (default 60s)"`
	// node-drain, node-loss
	Node    string       `yaml:"node,omitempty" json:"node,omitempty" doc:"node-drain, node-loss: a node name, random-worker (seeded), or worker-with-primary (the sample's primary)"`
	Label   string       `yaml:"label,omitempty" json:"label,omitempty" doc:"node-drain, node-loss: a label selector of nodes (the first by name)"`
	Running *NodeRunning `yaml:"running,omitempty" json:"running,omitempty" doc:"node-drain, node-loss: the node running a pod the selector picks"`
	Keep    bool         `yaml:"keep,omitempty" json:"keep,omitempty" doc:"node-drain: leave the node cordoned until the run ends"`
	Timeout Duration     `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"node-drain: how long evictions may be retried (PodDisruptionBudgets) before the drain gives up (default 2m); node-loss: how long the node may take to be Ready again once started (default 3m)"`
}

// NodeRunning picks the node that runs a pod a selector picks.
type NodeRunning struct {
	Selector string `yaml:"selector" json:"selector" doc:"label selector of the pod, e.g. statefulset.kubernetes.io/pod-name=orders-db-0"`
	Avoid    string `yaml:"avoid,omitempty" json:"avoid,omitempty" doc:"and no pod this label selector picks, e.g. a replica's node that does not hold the primary"`
}

// Rollback drills restoring the previous version.
type Rollback struct {
	Target  string   `yaml:"target" json:"target" doc:"deployment/NAME or statefulset/NAME (its latest blue-green switched back, else its previous revision), or schema/STEP (the sample's down migration of expand, backfill or contract)"`
	Within  Duration `yaml:"within" json:"within" doc:"service must be restored within this time"`
	Version string   `yaml:"version,omitempty" json:"version,omitempty" doc:"the version header value that means restored (the sample: found from the previous revision)"`
}

// Switchover is a planned change of the sample's primary.
type Switchover struct {
	To     string   `yaml:"to,omitempty" json:"to,omitempty" doc:"the member to promote, e.g. orders-db-1 (default: the replica that has replayed the most)"`
	Within Duration `yaml:"within,omitempty" json:"within,omitempty" doc:"the new primary must have replayed everything within this (default 30s); past it the switchover is called off and the old primary takes writes again"`
	Rejoin Duration `yaml:"rejoin,omitempty" json:"rejoin,omitempty" doc:"how long the former primary may take to stream again as a replica (default 2m); the step fails past it"`
}

// Failover promotes a replica once the sample's primary is gone.
type Failover struct {
	After  Duration `yaml:"after,omitempty" json:"after,omitempty" doc:"the primary is gone once it has not answered for this long (default 3s)"`
	Within Duration `yaml:"within,omitempty" json:"within,omitempty" doc:"how long to watch for the primary to go (default 2m); a primary that keeps answering fails the step"`
	Rejoin Duration `yaml:"rejoin,omitempty" json:"rejoin,omitempty" doc:"wait this long for the former primary to come back and stream as a replica (default 0: do not wait; it rejoins by itself when it comes back)"`
}

// Exec runs a command in every pod a label selector picks (a runbook command, or the workload's
// checksum command).
type Exec struct {
	Command   []string `yaml:"command" json:"command" doc:"argv run in the container, no shell unless you name one"`
	Selector  string   `yaml:"selector" json:"selector" doc:"label selector of the pods, e.g. app=web"`
	Container string   `yaml:"container,omitempty" json:"container,omitempty" doc:"default: the pod's first container"`
}

// Checksum is the command whose output each replica of one's own workload must agree on, with how
// many replicas there must be and how to let them settle first.
type Checksum struct {
	Command   []string `yaml:"command" json:"command" doc:"argv run in each replica's container"`
	Selector  string   `yaml:"selector" json:"selector" doc:"label selector of the replica pods, e.g. app=web"`
	Container string   `yaml:"container,omitempty" json:"container,omitempty" doc:"default: the pod's first container"`
	Replicas  *int     `yaml:"replicas,omitempty" json:"replicas,omitempty" doc:"replicas expected (default: spec.replicas of the Deployments/StatefulSets whose pods the selector picks)"`
	Settle    Duration `yaml:"settle,omitempty" json:"settle,omitempty" doc:"wait this long after the load before reading"`
	Barrier   []string `yaml:"barrier,omitempty" json:"barrier,omitempty" doc:"argv run in every replica before reading (e.g. a flush); must succeed"`
}

// Exec is the checksum command as an exec.
func (c *Checksum) Exec() *Exec {
	return &Exec{Command: c.Command, Selector: c.Selector, Container: c.Container}
}

// Found tells a stored write from a missing one in a read-back answer.
type Found struct {
	Status    []int `yaml:"status,omitempty" json:"status,omitempty" doc:"statuses that mean stored (default 200); 404 means missing"`
	BodyHasID bool  `yaml:"bodyHasID,omitempty" json:"bodyHasID,omitempty" doc:"a stored answer must also contain the id in its body"`
}

// CheckArg configures one check; which fields apply depends on the check.
type CheckArg struct {
	Max        *int     `yaml:"max,omitempty" json:"max,omitempty" doc:"zero-failed-requests: the failure budget; graceful-termination: how many pods may stop sooner"`
	P99        Duration `yaml:"p99,omitempty" json:"p99,omitempty" doc:"latency-slo"`
	P50        Duration `yaml:"p50,omitempty" json:"p50,omitempty" doc:"latency-slo"`
	MinShare   float64  `yaml:"minShare,omitempty" json:"minShare,omitempty" doc:"load-achieved: fraction of the target rate (default 0.95)"`
	MinSamples int      `yaml:"minRequests,omitempty" json:"minRequests,omitempty" doc:"zero-failed-requests, load-achieved: fewest requests that count as measured (zero-failed-requests' default: one per second of the run, or half the schedule under 2/s)"`
	ReadPath   string   `yaml:"readPath,omitempty" json:"readPath,omitempty" doc:"acked-writes-durable on your own manifests: GET path under baseURL that answers 200 for a stored write and 404 for a missing one; must contain {{.ID}}"`
	Found      *Found   `yaml:"found,omitempty" json:"found,omitempty" doc:"acked-writes-durable: what a stored write's read-back answer looks like"`
	MinAcked   int      `yaml:"minAcked,omitempty" json:"minAcked,omitempty" doc:"acked-writes-durable: fewest acknowledged writes that make a judgement (default 10)"`
	Per        string   `yaml:"per,omitempty" json:"per,omitempty" enum:"step" doc:"latency-slo: also hold the bounds in every step window"`
	MinServe   Duration `yaml:"minServe,omitempty" json:"minServe,omitempty" doc:"graceful-termination: how long a pod that left the load's Service while ready must have kept serving after its deletion began (default 2s)"`
}

// CheckSchema is one check as the JSON Schema describes it: its name, a line of doc and the options
// it takes (CheckArg's names). The table of checks is verify's: Schema is given it.
type CheckSchema struct {
	Name, Doc string
	Options   []string
}

// At is when a step starts: at an offset from the load's start (30s), from another step's start
// (rollout+5s) or from its end (rollout.end+5s). The zero At (no at:) means once every earlier step
// has ended.
type At struct {
	Step   string // "" is the load's start
	End    bool   // from Step's end rather than its start
	Offset time.Duration
	Set    bool
}

var atPattern = regexp.MustCompile(`^(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(\.end)?\+)?([0-9][0-9a-zµ.]*)$`)

// UnmarshalYAML parses an at.
func (a *At) UnmarshalYAML(n *yaml.Node) error {
	m := atPattern.FindStringSubmatch(strings.TrimSpace(n.Value))
	if n.Kind != yaml.ScalarNode || m == nil {
		return posErr(n, "%q: want an offset (30s), STEP+offset (rollout+5s) or STEP.end+offset (rollout.end+5s)", n.Value)
	}
	d, err := time.ParseDuration(m[3])
	if err != nil {
		return posErr(n, "bad offset %q in %q: want a duration such as 5s", m[3], n.Value)
	}
	*a = At{Step: m[1], End: m[2] != "", Offset: d, Set: true}
	return nil
}

func (a At) String() string {
	switch {
	case !a.Set:
		return ""
	case a.Step == "":
		return a.Offset.String()
	case a.End:
		return a.Step + ".end+" + a.Offset.String()
	}
	return a.Step + "+" + a.Offset.String()
}

func (a At) MarshalYAML() (any, error) { return a.String(), nil }

// IsZero lets omitempty leave an unset at out.
func (a At) IsZero() bool { return !a.Set }

// Duration is a time.Duration written as Go writes durations: 500ms, 10s, 1m30s.
type Duration struct{ time.Duration }

// UnmarshalYAML parses a duration; a bare number is refused (seconds or milliseconds?).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return posErr(n, "want a duration such as 10s or 1m30s")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return posErr(n, "bad duration %q: want a number with a unit, such as 500ms, 10s or 1m30s", n.Value)
	}
	if v < 0 {
		return posErr(n, "duration %q is negative", n.Value)
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Rate is requests per second, written N/s, N/m or N/h.
type Rate struct{ PerSecond float64 }

// UnmarshalYAML parses a rate.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return posErr(n, "want a rate such as 50/s")
	}
	num, unit, ok := strings.Cut(strings.TrimSpace(n.Value), "/")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[strings.TrimSpace(unit)]
	if !ok || err != nil || per == 0 {
		return posErr(n, "bad rate %q: want N/s, N/m or N/h, such as 50/s", n.Value)
	}
	if v <= 0 || v > 1e6 {
		return posErr(n, "rate %q must be above 0 and at most 1000000/s", n.Value)
	}
	r.PerSecond = v / per
	return nil
}

func (r Rate) MarshalYAML() (any, error) { return fmt.Sprintf("%g/s", r.PerSecond), nil }
