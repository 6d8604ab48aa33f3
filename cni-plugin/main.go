// netpol-agent-cni: a chained CNI plugin (spec 0.3.0 to 1.1.0) that holds a pod's start until the local
// netpol-agent has committed the pod's rules to the kernel.
//
// ADD: the pod's addresses come from prevResult (the main plugin's result), its namespace/name from
// CNI_ARGS. One JSON line goes to the agent's unix socket and the plugin waits, bounded by timeoutMs, for
// one JSON line back; on {"result":"ok"} it prints prevResult as its result. When the agent is absent,
// slow or answers an error, failurePolicy decides: "fail-closed" (default) fails ADD (code 11, so the
// runtime retries the sandbox, or 100 with the agent's reason) and the pod does not start unprotected;
// "fail-open" lets the pod start and says so on stderr (the runtime's log).
// DEL tells the agent the sandbox is gone and never fails: not because of the agent, nor because of a
// prevResult or CNI_ARGS it cannot use (a runtime retries a failed DEL for ever). CHECK validates the
// configuration and prevResult. STATUS asks the agent whether it can program a new pod (failure policy
// as for ADD). GC is a no-op: the plugin keeps no state.
//
// The CNI project's skel reads the environment, validates the container ID, network and interface names
// and applies the spec's version rules (CHECK from 0.4.0, GC and STATUS from 1.1.0; VERSION whatever
// stdin says). Static (CGO_ENABLED=0): it runs on the host, where nothing else of the agent exists.
package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

// supportedVersions are those with prevResult for chained plugins (0.3.0 on).
var supportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

const about = "netpol-agent-cni: a CNI plugin, run by the container runtime with CNI_COMMAND set; chain it after the\n" +
	"plugin that assigns pod addresses in the node's conflist (docs/cni.md of netpol-agent)."

func main() {
	// Run by hand (no CNI_COMMAND): the explanation on stderr, and skel's error 4 on stdout as for a
	// runtime (given the about text, skel would print it and exit 0).
	if os.Getenv("CNI_COMMAND") == "" {
		fmt.Fprintln(os.Stderr, about)
	}
	p := plugin{stdout: os.Stdout, stderr: os.Stderr, dial: dialUnix}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check, Status: p.status, GC: p.gc}, supportedVersions, "")
}

func dialUnix(socketPath string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("unix", socketPath, timeout)
}
