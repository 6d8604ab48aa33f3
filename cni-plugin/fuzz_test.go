package main

// Go native fuzzing of what reaches the plugin from outside: the runtime's stdin (every command, against
// an agent that answers ok) and the agent's answer on the socket. `go test` runs the seeds below as
// plain tests; `go test -fuzz=FuzzStdin -fuzztime=20s` (scripts: npm run test:cni-fuzz) mutates them.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

const prevResult100 = `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.244.0.5/24","gateway":"10.244.0.1","interface":0},{"address":"fd00::5/64"}],"dns":{}}`

var stdinSeeds = []string{
	`{"cniVersion":"1.0.0","name":"pods","type":"netpol-agent-cni","prevResult":` + prevResult100 + `}`,
	`{"cniVersion":"1.1.0","name":"pods","type":"netpol-agent-cni","timeoutMs":3000,"failurePolicy":"fail-open","prevResult":` + prevResult100 + `}`,
	`{"cniVersion":"0.4.0","name":"pods","type":"netpol-agent-cni","prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.244.0.5/24","interface":0}]}}`,
	`{"cniVersion":"0.3.1","name":"pods","type":"netpol-agent-cni","prevResult":{"ips":[{"version":"6","address":"fd00::5/64"}]}}`,
	`{"cniVersion":"1.0.0","name":"pods","type":"netpol-agent-cni","prevResult":{"ips":[{"address":5}]}}`,
	`{"cniVersion":"1.0.0","name":"pods","prevResult":"\xff\xfe"}`,
	`{"cniVersion":"1.0.0","name":"pods","timeoutMs":1.5,"socketPath":""}`,
	`{"cniVersion":"1.0.0","name":"pods","prevResult":{"ips":[{"address":"10.0.0.1/8"}],"note":"\ud83d\ude00 \"q\" \\"}}`,
	`{"cniVersion":"1.0.0",`,
	`[1, 2`,
	``,
}

// answerOK is a fake agent on one end of an in-memory connection: it reads one request line and answers ok.
func answerOK(t *testing.T) func(string, time.Duration) (net.Conn, error) {
	return func(string, time.Duration) (net.Conn, error) {
		ours, agents := net.Pipe()
		go func() {
			defer agents.Close()
			req, err := bufio.NewReader(agents).ReadBytes('\n')
			if err != nil {
				return
			}
			if !json.Valid(req) || !utf8.Valid(req) {
				t.Errorf("the request to the agent is not valid JSON/UTF-8: %q", req)
			}
			_, _ = agents.Write([]byte(`{"result":"ok","detail":"rules committed"}` + "\n"))
		}()
		return ours, nil
	}
}

// checkCNIError: a command's error is a CNI error of the spec or ours (never the skel's 999 for an
// error it does not know), and prints as valid JSON in UTF-8.
func checkCNIError(t *testing.T, command string, err error) {
	var cniErr *types.Error
	if !errors.As(err, &cniErr) {
		t.Fatalf("%s: error %v is not a CNI error", command, err)
	}
	if cniErr.Code == types.ErrInternal {
		t.Fatalf("%s: internal error %v", command, err)
	}
	out, marshalErr := json.Marshal(cniErr)
	if marshalErr != nil || !utf8.Valid(out) || !json.Valid(out) {
		t.Fatalf("%s: error %q does not print as JSON", command, out)
	}
}

func FuzzStdin(f *testing.F) {
	for _, s := range stdinSeeds {
		f.Add([]byte(s), "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_UID=u-1")
	}
	f.Add([]byte(stdinSeeds[0]), "K8S_POD_NAMESPACE=\xff;K8S_POD_NAME=a=b;x")
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		commands := map[string]func(plugin, *skel.CmdArgs) error{"ADD": plugin.add, "DEL": plugin.del, "CHECK": plugin.check, "STATUS": plugin.status, "GC": plugin.gc}
		for command, run := range commands {
			var stdout, stderr bytes.Buffer
			p := plugin{stdout: &stdout, stderr: &stderr, dial: answerOK(t)}
			err := run(p, &skel.CmdArgs{ContainerID: "c0ffee", Netns: "/var/run/netns/x", IfName: "eth0", Args: cniArgs, StdinData: stdin})
			if command == "DEL" && err != nil {
				t.Fatalf("DEL failed: %v", err)
			}
			if err != nil {
				checkCNIError(t, command, err)
				continue
			}
			if command == "ADD" && (!json.Valid(stdout.Bytes()) || !utf8.Valid(stdout.Bytes())) {
				t.Fatalf("ADD printed a result that is not valid JSON/UTF-8: %q", stdout.Bytes())
			}
			if command != "ADD" && stdout.Len() > 0 {
				t.Fatalf("%s printed %q; only ADD has a result", command, stdout.Bytes())
			}
		}
	})
}

// replyWith is the agent's end of a connection: it reads the request line, then writes reply and closes.
func replyWith(agents net.Conn, reply []byte) {
	defer agents.Close()
	if _, err := bufio.NewReader(agents).ReadBytes('\n'); err != nil {
		return
	}
	_, _ = agents.Write(reply)
}

func FuzzAgentReply(f *testing.F) {
	for _, s := range []string{
		`{"result":"ok"}` + "\n",
		`{"result":"ok","detail":"rules committed"}` + "\n" + "trailing",
		`{"result":"error","message":"pod team-a/web-0 not known from the API within 5000 ms"}` + "\n",
		`{"result":"error"}` + "\n",
		`{"result":5}` + "\n",
		`{"result":"ok"}`,
		"not json\n",
		"\xff\xfe\n",
		`{"result":"error","message":"\udc00 \u0000"}` + "\n",
		"",
		strings.Repeat("x", maxAnswer+10) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		ours, agents := net.Pipe()
		defer ours.Close()
		go replyWith(agents, reply)
		line, err := exchange(ours, []byte(`{"op":"status"}`+"\n"), time.Now().Add(10*time.Second))
		first, _, complete := bytes.Cut(reply, []byte{'\n'})
		if !complete || len(first) > maxAnswer {
			if err == nil {
				t.Fatalf("a reply without a complete line within %d bytes was read as %q", maxAnswer, line)
			}
			return
		}
		if err != nil {
			t.Fatalf("a complete reply line %q was not read: %v", first, err)
		}
		if !bytes.Equal(line, first) {
			t.Fatalf("read %q, the first line is %q", line, first)
		}
		v := verdict(line)
		var parsed struct {
			Result any `json:"result"`
		}
		isOK := json.Unmarshal(line, &parsed) == nil && parsed.Result == "ok"
		if (v == nil) != isOK {
			t.Fatalf("answer %q: verdict %v", line, v)
		}
		if v != nil {
			checkCNIError(t, "ADD", types.NewError(errAgentRefusedCode, "pod a/b", v.Error()))
		}
	})
}

// The reader stops at the first newline: an agent that keeps writing does not hold the plugin.
func TestExchangeReadsOneLine(t *testing.T) {
	ours, agents := net.Pipe()
	defer ours.Close()
	go replyWith(agents, []byte(`{"result":"ok"}`+"\n"+strings.Repeat("y", 1<<20)))
	line, err := exchange(ours, []byte("{}\n"), time.Now().Add(10*time.Second))
	if err != nil || string(line) != `{"result":"ok"}` {
		t.Fatalf("got %q, %v", line, err)
	}
}

// A silent agent: the deadline ends the wait.
func TestExchangeDeadline(t *testing.T) {
	ours, agents := net.Pipe()
	defer ours.Close()
	defer agents.Close()
	go func() { _, _ = io.Copy(io.Discard, agents) }()
	if _, err := exchange(ours, []byte("{}\n"), time.Now().Add(50*time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
}
