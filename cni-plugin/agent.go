package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// maxAnswer bounds the agent's answer line: its answers are short, and a longer line is not one of them.
const maxAnswer = 65536

// request is one line to the agent (src/cni/server.ts reads it).
type request struct {
	Op          string   `json:"op"`
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	UID         string   `json:"uid"`
	ContainerID string   `json:"containerId"`
	IPs         []string `json:"ips"`
	TimeoutMs   int      `json:"timeoutMs"`
}

// answer is the agent's line: {"result":"ok","detail":"..."} or {"result":"error","message":"..."}.
type answer struct {
	Result  *string `json:"result"`
	Message *string `json:"message"`
}

// errAgentRefused is the agent's answer "error": it was reached and said no, with its reason.
type errAgentRefused struct{ reason string }

func (e errAgentRefused) Error() string { return e.reason }

// askAgent sends the request and reads the verdict before the timeout: nil (ok), errAgentRefused, or
// another error when the agent is unavailable (absent, slow, closed without answering, unreadable).
func (p plugin) askAgent(socketPath string, req any, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	conn, err := p.dial(socketPath, timeout)
	if err != nil {
		return fmt.Errorf("cannot connect to the agent at %s: %w", socketPath, err)
	}
	defer conn.Close()
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("cannot encode the request: %w", err)
	}
	reply, err := exchange(conn, append(line, '\n'), deadline)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("the agent at %s did not answer within %d ms", socketPath, timeout.Milliseconds())
	}
	if err != nil {
		return fmt.Errorf("the agent at %s: %w", socketPath, err)
	}
	return verdict(reply)
}

// exchange writes the request and reads one answer line (without its newline) before the deadline.
func exchange(conn net.Conn, line []byte, deadline time.Time) ([]byte, error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := conn.Write(line); err != nil {
		return nil, fmt.Errorf("cannot send: %w", err)
	}
	reply, err := bufio.NewReaderSize(io.LimitReader(conn, maxAnswer+1), maxAnswer+1).ReadSlice('\n')
	switch {
	case err == nil:
		return bytes.TrimSuffix(reply, []byte{'\n'}), nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, err
	case errors.Is(err, bufio.ErrBufferFull) || len(reply) > maxAnswer:
		return nil, fmt.Errorf("its answer is longer than %d bytes", maxAnswer)
	case errors.Is(err, io.EOF):
		return nil, errors.New("it closed the connection without answering")
	default:
		return nil, fmt.Errorf("cannot read its answer: %w", err)
	}
}

// verdict reads the answer line.
func verdict(reply []byte) error {
	var a answer
	if err := json.Unmarshal(reply, &a); err != nil {
		return fmt.Errorf("unreadable answer from the agent: %w", err)
	}
	switch {
	case a.Result == nil:
		return errors.New(`unreadable answer from the agent: no "result"`)
	case *a.Result == "ok":
		return nil
	case a.Message != nil:
		return errAgentRefused{reason: *a.Message}
	default:
		return errAgentRefused{reason: "the agent refused without a message"}
	}
}
