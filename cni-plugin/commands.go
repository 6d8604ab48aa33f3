package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// errAgentRefusedCode is the plugin's own error code (100 and up are the plugin's) for an agent that was
// reached and could not enforce the pod's rules.
const errAgentRefusedCode uint = 100

// plugin runs the CNI commands; stdout gets the result, stderr the runtime's log lines, dial reaches
// the agent's socket.
type plugin struct {
	stdout io.Writer
	stderr io.Writer
	dial   func(socketPath string, timeout time.Duration) (net.Conn, error)
}

func (p plugin) add(args *skel.CmdArgs) error {
	conf, s, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	prevResult, ips, err := podAddresses(conf)
	if err != nil {
		return err
	}
	pod, err := parsePodArgs(args.Args)
	if err != nil {
		return err
	}
	if pod.K8S_POD_NAMESPACE == "" || pod.K8S_POD_NAME == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS must name the pod (K8S_POD_NAMESPACE and K8S_POD_NAME)", args.Args)
	}
	name := fmt.Sprintf("%s/%s", pod.K8S_POD_NAMESPACE, pod.K8S_POD_NAME)
	err = p.askAgent(s.socketPath, podRequest("add", args, pod, ips, s), time.Duration(s.timeoutMs)*time.Millisecond)
	var refused errAgentRefused
	switch {
	case err == nil:
	case s.failOpen:
		fmt.Fprintf(p.stderr, "netpol-agent-cni: pod %s starts without confirmed network policy rules (failurePolicy fail-open): %v\n", name, err)
	case errors.As(err, &refused):
		return types.NewError(errAgentRefusedCode, fmt.Sprintf("pod %s: netpol-agent could not enforce its network policy rules", name), refused.reason)
	default:
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("pod %s: netpol-agent did not confirm its network policy rules (failurePolicy fail-closed); the pod starts once the agent runs", name), err.Error())
	}
	result, err := prevResult.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return invalidConfig(fmt.Sprintf("prevResult cannot be given as a version %s result", conf.CNIVersion), err.Error())
	}
	return result.PrintTo(p.stdout)
}

// del never fails: what it cannot read it leaves out, and the agent releases the sandbox by its
// container ID (or when the API reports the pod gone).
func (p plugin) del(args *skel.CmdArgs) error {
	conf, s, err := parseConf(args.StdinData)
	if err != nil {
		fmt.Fprintf(p.stderr, "netpol-agent-cni: DEL of container %s: %v (the agent releases the addresses when the API reports the pod gone)\n", args.ContainerID, err)
		return nil
	}
	var ips []string
	if conf.hasPrevResult() {
		if _, parsed, err := podAddresses(conf); err == nil {
			ips = parsed
		} else {
			fmt.Fprintf(p.stderr, "netpol-agent-cni: DEL of container %s: %v (the agent releases the sandbox by its container ID)\n", args.ContainerID, err)
		}
	}
	pod, err := parsePodArgs(args.Args)
	if err != nil {
		fmt.Fprintf(p.stderr, "netpol-agent-cni: DEL of container %s: %v (the agent cannot tell whose sandbox ended; it drops the addresses when the API reports the pod gone)\n", args.ContainerID, err)
	}
	if err := p.askAgent(s.socketPath, podRequest("del", args, pod, ips, s), time.Duration(s.timeoutMs)*time.Millisecond); err != nil {
		fmt.Fprintf(p.stderr, "netpol-agent-cni: DEL of container %s: %v (ignored: the agent drops the addresses when the API reports the pod gone)\n", args.ContainerID, err)
	}
	return nil
}

// check validates the configuration and prevResult; the agent keeps the rules in place on its own.
func (p plugin) check(args *skel.CmdArgs) error {
	conf, _, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	_, _, err = podAddresses(conf)
	return err
}

// status: the agent can program a new pod (STATUS of CNI 1.1); under fail-open the plugin is always
// available.
func (p plugin) status(args *skel.CmdArgs) error {
	_, s, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	err = p.askAgent(s.socketPath, map[string]string{"op": "status"}, time.Duration(s.timeoutMs)*time.Millisecond)
	if err == nil || s.failOpen {
		return nil
	}
	return types.NewError(types.ErrPluginNotAvailable, "netpol-agent is not ready to confirm network policy rules (failurePolicy fail-closed)", err.Error())
}

// gc has nothing to collect: the plugin keeps no state, and the agent forgets a sandbox at its DEL or
// its pod's deletion.
func (p plugin) gc(args *skel.CmdArgs) error {
	_, _, err := parseConf(args.StdinData)
	return err
}

func podRequest(op string, args *skel.CmdArgs, pod podArgs, ips []string, s settings) request {
	if ips == nil {
		ips = []string{}
	}
	return request{Op: op, Namespace: string(pod.K8S_POD_NAMESPACE), Name: string(pod.K8S_POD_NAME), UID: string(pod.K8S_POD_UID), ContainerID: args.ContainerID, IPs: ips, TimeoutMs: s.timeoutMs}
}
