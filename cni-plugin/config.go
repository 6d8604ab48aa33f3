package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

const (
	defaultSocket    = "/run/netpol-agent/cni.sock"
	defaultTimeoutMs = 10000
	maxTimeoutMs     = 300000
	// A pod has one address per family; more than this is a main plugin's mistake, and the request to the
	// agent stays far below its 64 KiB line limit.
	maxAddresses = 16
)

// netConf is the plugin's entry of the conflist as the runtime hands it over. prevResult is kept as
// bytes (this field hides the embedded PluginConf's of the same JSON name): an unusable prevResult is an
// error for ADD and CHECK, while DEL goes on without it.
type netConf struct {
	types.PluginConf
	PrevResultJSON json.RawMessage `json:"prevResult,omitempty"`
	SocketPath     *string         `json:"socketPath,omitempty"`
	TimeoutMs      json.RawMessage `json:"timeoutMs,omitempty"`
	FailurePolicy  *string         `json:"failurePolicy,omitempty"`
}

// settings are the validated settings of the entry.
type settings struct {
	socketPath string
	timeoutMs  int
	failOpen   bool
}

// parseConf reads the configuration and the plugin's settings (error 6 when it is not JSON, 7 for a bad
// setting).
func parseConf(stdin []byte) (*netConf, settings, error) {
	conf := &netConf{}
	s := settings{socketPath: defaultSocket, timeoutMs: defaultTimeoutMs}
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(stdin, conf); errors.As(err, &typeErr) && typeErr.Field != "" {
		return nil, s, invalidConfig(fmt.Sprintf("%s must not be a JSON %s", typeErr.Field, typeErr.Value), err.Error())
	} else if err != nil {
		return nil, s, types.NewError(types.ErrDecodingFailure, "the network configuration on stdin is not valid JSON", err.Error())
	}
	if conf.SocketPath != nil {
		var addr syscall.RawSockaddrUnix
		if *conf.SocketPath == "" {
			return nil, s, invalidConfig("socketPath must be a non-empty string", "")
		}
		if len(*conf.SocketPath) >= len(addr.Path) {
			return nil, s, invalidConfig("socketPath is longer than a unix socket path may be", *conf.SocketPath)
		}
		s.socketPath = *conf.SocketPath
	}
	if conf.TimeoutMs != nil {
		v, err := strconv.Atoi(string(conf.TimeoutMs))
		if err != nil || v < 1 || v > maxTimeoutMs {
			return nil, s, invalidConfig(fmt.Sprintf("timeoutMs must be an integer from 1 to %d", maxTimeoutMs), string(conf.TimeoutMs))
		}
		s.timeoutMs = v
	}
	if conf.FailurePolicy != nil {
		switch *conf.FailurePolicy {
		case "fail-open":
			s.failOpen = true
		case "fail-closed":
		default:
			return nil, s, invalidConfig(`failurePolicy must be "fail-closed" or "fail-open"`, *conf.FailurePolicy)
		}
	}
	return conf, s, nil
}

// podAddresses parses prevResult (in any supported version) and returns it with the pod's addresses.
func podAddresses(conf *netConf) (types.Result, []string, error) {
	if !conf.hasPrevResult() {
		return nil, nil, invalidConfig("no prevResult: netpol-agent-cni is a chained plugin and must come after the plugin that assigns the pod's addresses", "")
	}
	if err := json.Unmarshal(conf.PrevResultJSON, &conf.RawPrevResult); err != nil {
		return nil, nil, invalidConfig("prevResult must be an object", err.Error())
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, nil, invalidConfig("prevResult is not a CNI result", err.Error())
	}
	current, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, nil, invalidConfig("prevResult is not a CNI result", err.Error())
	}
	if len(current.IPs) == 0 {
		return nil, nil, invalidConfig("prevResult has no ips: the plugin before netpol-agent-cni assigned the pod no address", "")
	}
	if len(current.IPs) > maxAddresses {
		return nil, nil, invalidConfig(fmt.Sprintf("prevResult has %d addresses, more than the %d a pod may have", len(current.IPs), maxAddresses), "")
	}
	ips := make([]string, 0, len(current.IPs))
	for _, ip := range current.IPs {
		ips = append(ips, ip.Address.String())
	}
	return conf.PrevResult, ips, nil
}

func (c *netConf) hasPrevResult() bool {
	return c.PrevResultJSON != nil && string(c.PrevResultJSON) != "null"
}

func invalidConfig(msg, details string) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, msg, details)
}

// podArgs are the kubelet's CNI_ARGS; types.LoadArgs matches the keys to the field names.
type podArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString
	K8S_POD_NAME      types.UnmarshallableString
	K8S_POD_UID       types.UnmarshallableString
}

// parsePodArgs reads CNI_ARGS ("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;...").
func parsePodArgs(args string) (podArgs, error) {
	var a podArgs
	if err := types.LoadArgs(args, &a); err != nil {
		return a, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS cannot be read", err.Error())
	}
	return a, nil
}
