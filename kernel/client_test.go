package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// testInterp is a small Interpreter for the kernel's own tests. Commands (one per cell):
//
//	print TEXT | eprint TEXT | fail TEXT | result TEXT | display | progress | page TEXT | clear
//	sleep SECONDS (honours ctx) | spam N SIZE | input PROMPT | panic | count (a counter that must survive)
type testInterp struct {
	mu      sync.Mutex
	counter int
}

func (ti *testInterp) Execute(ctx context.Context, code string, out Output) error {
	code = strings.TrimSpace(code)
	if code == "" || strings.HasPrefix(code, "#") {
		return nil
	}
	cmd, arg, _ := strings.Cut(code, " ")
	switch cmd {
	case "print":
		out.Stream("stdout", arg+"\n")
	case "eprint":
		out.Stream("stderr", arg+"\n")
	case "fail":
		return errors.New(arg)
	case "result":
		out.Result(Bundle{Data: map[string]any{"text/plain": arg}})
	case "display":
		out.Display(Bundle{Data: map[string]any{"text/plain": "d", "image/svg+xml": "<svg/>"}}, "")
	case "progress":
		out.Display(Bundle{Data: map[string]any{"text/plain": "0%"}}, "p1")
		out.Update(Bundle{Data: map[string]any{"text/plain": "100%"}}, "p1")
	case "page":
		out.Page(Bundle{Data: map[string]any{"text/plain": arg}})
	case "clear":
		out.Clear(true)
	case "sleep":
		secs, _ := strconv.ParseFloat(arg, 64)
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
		case <-ctx.Done():
			return ctx.Err()
		}
	case "spam":
		var n, size int
		fmt.Sscan(arg, &n, &size)
		pad := strings.Repeat("x", size)
		for i := range n {
			out.Stream("stdout", fmt.Sprintf("%d %s\n", i, pad))
		}
	case "input":
		v, err := out.Input(arg, false)
		if err != nil {
			return err
		}
		out.Stream("stdout", "got "+v+"\n")
	case "panic":
		panic("test panic")
	case "nan":
		out.Display(Bundle{Data: map[string]any{"text/plain": "x", "application/json": math.NaN()}}, "")
	case "count":
		ti.mu.Lock()
		ti.counter++
		n := ti.counter
		ti.mu.Unlock()
		out.Result(Bundle{Data: map[string]any{"text/plain": strconv.Itoa(n)}})
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}

func (ti *testInterp) Complete(code string, cursor int) ([]string, int, int) {
	start := strings.LastIndex(code[:cursor], " ") + 1
	var m []string
	for _, c := range []string{"print", "plan", "placement", "panic"} {
		if strings.HasPrefix(c, code[start:cursor]) {
			m = append(m, c)
		}
	}
	return m, start, cursor
}

func (ti *testInterp) Inspect(code string, cursor int, detail int) (Bundle, bool) {
	if strings.HasPrefix(code, "print") {
		return Bundle{Data: map[string]any{"text/plain": "print TEXT"}}, true
	}
	return Bundle{}, false
}

func (ti *testInterp) IsComplete(code string) (string, string) {
	if strings.HasSuffix(code, `\`) {
		return "incomplete", "  "
	}
	return "complete", ""
}

// testKernel starts a kernel on free loopback ports and stops it when the test ends.
func testKernel(t *testing.T, interp Interpreter) *Kernel {
	t.Helper()
	if interp == nil {
		interp = &testInterp{}
	}
	k, err := New(Config{
		Connection: ConnectionInfo{Transport: "tcp", IP: "127.0.0.1", Key: uuid.NewString(), SignatureScheme: "hmac-sha256"},
		Info:       Info{Implementation: "test", Language: LanguageInfo{Name: "test", FileExtension: ".t"}},
		Logger:     testLogger(t),
		TrapSIGINT: true,
	}, interp)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- k.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("kernel did not stop within 5 s")
		}
	})
	return k
}

// client is a test Jupyter client speaking our own ZMTP as DEALER and SUB.
type client struct {
	t       *testing.T
	sign    *signer
	session string
	shell   *zconn
	control *zconn
	stdin   *zconn
	iopub   chan *message
	shellIn chan *message
	ctrlIn  chan *message
	stdinIn chan *message

	sentHeader map[string][]byte // msg_id -> the header bytes as sent
}

func dialZ(t *testing.T, port int, typ string, identity []byte) *zconn {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	z, err := handshake(c, typ, identity)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// subscribe connects a SUB to iopub, subscribes to everything and waits until the kernel has seen it.
func subscribe(t *testing.T, k *Kernel) *zconn {
	t.Helper()
	before := k.iopub.subscribers()
	z := dialZ(t, k.conn.IOPubPort, "SUB", nil)
	if _, err := z.c.Write(appendMessage(nil, [][]byte{{1}})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for k.iopub.subscribers() <= before {
		if time.Now().After(deadline) {
			t.Fatal("subscription never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	return z
}

func newClient(t *testing.T, k *Kernel) *client {
	t.Helper()
	s, _ := newSigner(k.conn.SignatureScheme, k.conn.Key)
	c := &client{t: t, sign: s, session: uuid.NewString(),
		iopub: make(chan *message, 100000), shellIn: make(chan *message, 100), ctrlIn: make(chan *message, 100), stdinIn: make(chan *message, 100), sentHeader: map[string][]byte{}}
	id := []byte(c.session)
	c.shell = dialZ(t, k.conn.ShellPort, "DEALER", id)
	c.control = dialZ(t, k.conn.ControlPort, "DEALER", id)
	c.stdin = dialZ(t, k.conn.StdinPort, "DEALER", id)
	sub := subscribe(t, k)
	for _, p := range []struct {
		z  *zconn
		ch chan *message
	}{{c.shell, c.shellIn}, {c.control, c.ctrlIn}, {c.stdin, c.stdinIn}, {sub, c.iopub}} {
		go func() {
			for {
				frames, _, _, err := p.z.readMessage()
				if err != nil {
					return
				}
				m, err := c.sign.decode(frames)
				if err != nil {
					t.Errorf("kernel sent an undecodable message: %v", err)
					return
				}
				p.ch <- m
			}
		}()
	}
	return c
}

// send sends a request and returns its header's msg_id.
func (c *client) send(z *zconn, msgType string, content any) string {
	c.t.Helper()
	h := Header{MsgID: uuid.NewString(), Session: c.session, Username: "test", Date: jupyterTime(time.Now()), MsgType: msgType, Version: protocolVersion}
	frames, err := c.sign.encode(nil, h, nil, nil, content)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sentHeader[h.MsgID] = frames[2]
	if _, err := z.c.Write(appendMessage(nil, frames)); err != nil {
		c.t.Fatal(err)
	}
	return h.MsgID
}

func (c *client) execute(code string) string {
	return c.send(c.shell, "execute_request", map[string]any{"code": code, "silent": false, "store_history": true, "allow_stdin": true, "stop_on_error": true})
}

func recvFrom(t *testing.T, ch chan *message, what string, d time.Duration) *message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(d):
		t.Fatalf("no %s message within %v", what, d)
		return nil
	}
}

func (c *client) reply(ch chan *message, id string) *message {
	c.t.Helper()
	for {
		m := recvFrom(c.t, ch, "reply", 10*time.Second)
		if parentID(m) == id {
			return m
		}
	}
}

// outputs collects the IOPub messages of request id from busy to idle (excluding both).
func (c *client) outputs(id string) []*message {
	c.t.Helper()
	var out []*message
	busy := false
	for {
		m := recvFrom(c.t, c.iopub, "iopub", 10*time.Second)
		if parentID(m) != id {
			continue
		}
		if m.header.MsgType == "status" {
			state := content(m)["execution_state"]
			if state == "busy" {
				busy = true
				continue
			}
			if state == "idle" {
				if !busy {
					c.t.Fatal("idle before busy")
				}
				return out
			}
		}
		if !busy {
			c.t.Fatalf("%s before busy", m.header.MsgType)
		}
		out = append(out, m)
	}
}

func parentID(m *message) string {
	var h Header
	_ = json.Unmarshal(m.parent, &h)
	return h.MsgID
}

func content(m *message) map[string]any {
	var c map[string]any
	_ = json.Unmarshal(m.content, &c)
	return c
}

func types(ms []*message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.header.MsgType)
	}
	return s
}
