package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logSink collects the kernel's log lines so tests can check what was logged.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.lines = append(s.lines, string(p))
	s.mu.Unlock()
	return len(p), nil
}

func (s *logSink) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

var sinks sync.Map // *testing.T -> *logSink

func testLogger(t *testing.T) *log.Logger {
	s := &logSink{}
	sinks.Store(t, s)
	return log.New(s, "", 0)
}

func sinkOf(t *testing.T) *logSink {
	s, _ := sinks.Load(t)
	return s.(*logSink)
}

func TestKernelInfo(t *testing.T) {
	k := testKernel(t, nil)
	c := newClient(t, k)
	t.Run("replies on shell between busy and idle, quoting the request header verbatim", func(t *testing.T) {
		id := c.send(c.shell, "kernel_info_request", map[string]any{})
		r := c.reply(c.shellIn, id)
		if r.header.MsgType != "kernel_info_reply" || content(r)["protocol_version"] != "5.3" {
			t.Fatalf("got %s %v", r.header.MsgType, content(r))
		}
		if out := c.outputs(id); len(out) != 0 {
			t.Errorf("kernel_info produced output %v", types(out))
		}
		if sent := c.sentHeader[id]; !bytes.Equal(r.parent, sent) {
			t.Errorf("parent_header %s is not the request's header %s", r.parent, sent)
		}
	})
	t.Run("replies on control too", func(t *testing.T) {
		id := c.send(c.control, "kernel_info_request", map[string]any{})
		if r := c.reply(c.ctrlIn, id); r.header.MsgType != "kernel_info_reply" {
			t.Fatalf("got %s", r.header.MsgType)
		}
		c.outputs(id)
	})
}

func TestExecute(t *testing.T) {
	k := testKernel(t, nil)
	c := newClient(t, k)
	run := func(code string) (*message, []*message) {
		id := c.execute(code)
		r := c.reply(c.shellIn, id)
		return r, c.outputs(id)
	}
	tests := []struct {
		name, code string
		status     string
		want       []string // IOPub message types between busy and idle
		count      float64
	}{
		{"a print streams to stdout", "print hello", "ok", []string{"execute_input", "stream"}, 1},
		{"an eprint streams to stderr", "eprint oops", "ok", []string{"execute_input", "stream"}, 2},
		{"a result is an execute_result with the cell's count", "result 42", "ok", []string{"execute_input", "execute_result"}, 3},
		{"a display is display_data", "display", "ok", []string{"execute_input", "display_data"}, 4},
		{"a progress display is updated in place", "progress", "ok", []string{"execute_input", "display_data", "update_display_data"}, 5},
		{"clear sends clear_output", "clear", "ok", []string{"execute_input", "clear_output"}, 6},
		{"a failing cell sends exactly one error", "fail it broke", "error", []string{"execute_input", "error"}, 7},
		{"a panic is an error and the kernel lives", "panic", "error", []string{"execute_input", "error"}, 8},
		{"an output JSON cannot encode becomes a note on stderr", "nan", "ok", []string{"execute_input", "stream"}, 9},
		{"a comment-only cell replies ok with no output", "# nothing", "ok", []string{"execute_input"}, 10},
		{"an empty cell replies ok and takes no number", "   ", "ok", []string{"execute_input"}, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, out := run(tc.code)
			rc := content(r)
			if rc["status"] != tc.status || rc["execution_count"] != tc.count {
				t.Errorf("reply %v; want status %s count %v", rc, tc.status, tc.count)
			}
			if got := types(out); !slices.Equal(got, tc.want) {
				t.Errorf("outputs %v; want %v", got, tc.want)
			}
			for _, m := range out {
				if m.header.MsgType == "error" {
					tb, _ := content(m)["traceback"].([]any)
					if len(tb) == 0 || content(m)["evalue"] == "" {
						t.Errorf("error without traceback or evalue: %v", content(m))
					}
				}
				if m.header.MsgType == "execute_result" && content(m)["execution_count"] != tc.count {
					t.Errorf("execute_result count %v; want %v", content(m)["execution_count"], tc.count)
				}
			}
		})
	}
	t.Run("a page becomes the reply's payload", func(t *testing.T) {
		r, _ := run("page some help")
		p, _ := content(r)["payload"].([]any)
		if len(p) != 1 || p[0].(map[string]any)["source"] != "page" {
			t.Fatalf("payload %v", content(r)["payload"])
		}
	})
	t.Run("a silent cell sends no output and keeps the count", func(t *testing.T) {
		id := c.send(c.shell, "execute_request", map[string]any{"code": "print shh", "silent": true})
		r := c.reply(c.shellIn, id)
		if out := c.outputs(id); len(out) != 0 {
			t.Errorf("silent cell sent %v", types(out))
		}
		if content(r)["execution_count"] != 11.0 {
			t.Errorf("silent cell count %v; want 11 (unchanged)", content(r)["execution_count"])
		}
	})
	t.Run("store_history false does not count", func(t *testing.T) {
		id := c.send(c.shell, "execute_request", map[string]any{"code": "print x", "store_history": false})
		if n := content(c.reply(c.shellIn, id))["execution_count"]; n != 11.0 {
			t.Errorf("count %v; want 11", n)
		}
		c.outputs(id)
		r, _ := run("print y")
		if n := content(r)["execution_count"]; n != 12.0 {
			t.Errorf("next stored cell count %v; want 12", n)
		}
	})
}

func TestStopOnErrorAbortsQueuedCells(t *testing.T) {
	k := testKernel(t, nil)
	c := newClient(t, k)
	first := c.send(c.shell, "execute_request", map[string]any{"code": "sleep 0.2", "stop_on_error": true})
	failing := c.execute("fail boom")
	queued := []string{c.execute("print a"), c.execute("print b")}
	info := c.send(c.shell, "kernel_info_request", map[string]any{})
	if s := content(c.reply(c.shellIn, first))["status"]; s != "ok" {
		t.Fatalf("first cell %v", s)
	}
	if s := content(c.reply(c.shellIn, failing))["status"]; s != "error" {
		t.Fatalf("failing cell %v", s)
	}
	for _, id := range queued {
		if s := content(c.reply(c.shellIn, id))["status"]; s != "aborted" {
			t.Errorf("queued cell status %v; want aborted", s)
		}
	}
	if r := c.reply(c.shellIn, info); r.header.MsgType != "kernel_info_reply" {
		t.Errorf("kernel_info behind the aborted cells got %s", r.header.MsgType)
	}
	if s := content(c.reply(c.shellIn, c.execute("print after")))["status"]; s != "ok" {
		t.Errorf("a cell sent after the abort: %v", s)
	}
}

func TestInterrupt(t *testing.T) {
	interrupts := []struct {
		name string
		do   func(c *client)
	}{
		{"by interrupt_request on control", func(c *client) {
			id := c.send(c.control, "interrupt_request", map[string]any{})
			if r := c.reply(c.ctrlIn, id); r.header.MsgType != "interrupt_reply" {
				c.t.Errorf("got %s", r.header.MsgType)
			}
		}},
		{"by SIGINT", func(c *client) {
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
				c.t.Fatal(err)
			}
		}},
	}
	for _, tc := range interrupts {
		t.Run("a long cell interrupted "+tc.name+" ends in an error and the next cell works", func(t *testing.T) {
			k := testKernel(t, nil)
			c := newClient(t, k)
			if v := content(c.reply(c.shellIn, c.execute("count")))["status"]; v != "ok" {
				t.Fatal(v)
			}
			id := c.execute("sleep 30")
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			tc.do(c)
			r := c.reply(c.shellIn, id)
			if content(r)["status"] != "error" || content(r)["ename"] != "Interrupted" {
				t.Fatalf("interrupted cell replied %v", content(r))
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("interrupt took %v", d)
			}
			next := c.execute("count")
			r = c.reply(c.shellIn, next)
			out := c.outputs(next)
			if content(r)["status"] != "ok" {
				t.Fatalf("next cell %v", content(r))
			}
			if len(out) < 2 || content(out[1])["data"].(map[string]any)["text/plain"] != "2" {
				t.Errorf("state lost: %v", types(out))
			}
		})
	}
}

func TestBadMessagesAreDropped(t *testing.T) {
	k := testKernel(t, nil)
	sink := sinkOf(t)
	c := newClient(t, k)
	h := func(typ string) []byte {
		return []byte(`{"msg_id":"bad-` + typ + `","session":"s","username":"u","date":"","msg_type":"execute_request","version":"5.3"}`)
	}
	body := []byte(`{"code":"count","silent":false}`)
	good := func(hdr []byte) [][]byte {
		return [][]byte{[]byte(delimiter), c.sign.sign(hdr, []byte("{}"), []byte("{}"), body), hdr, []byte("{}"), []byte("{}"), body}
	}
	tests := []struct {
		name   string
		frames [][]byte
		log    string
	}{
		{"a wrong signature", func() [][]byte { f := good(h("sig")); f[1] = bytes.Repeat([]byte("0"), 64); return f }(), "bad or missing signature"},
		{"a missing signature", func() [][]byte { f := good(h("nosig")); f[1] = nil; return f }(), "bad or missing signature"},
		{"a signature that is not hex", func() [][]byte { f := good(h("hex")); f[1] = []byte("zz"); return f }(), "bad or missing signature"},
		{"no delimiter", good(h("delim"))[1:], "no <IDS|MSG> delimiter"},
		{"too few frames", good(h("few"))[:4], "frames after the delimiter"},
		{"a header that is not JSON", good([]byte("{not json")), "header is not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is dropped, logged and never executed", func(t *testing.T) {
			if _, err := c.shell.c.Write(appendMessage(nil, tc.frames)); err != nil {
				t.Fatal(err)
			}
			// The next good request must be answered, and nothing for the bad one may come first.
			id := c.execute("count")
			r := recvFrom(t, c.shellIn, "reply", 5*time.Second)
			if parentID(r) != id {
				t.Fatalf("got a reply to %q", parentID(r))
			}
			c.outputs(id)
			if !sink.contains(tc.log) {
				t.Errorf("log does not mention %q", tc.log)
			}
		})
	}
	t.Run("the counter shows no bad message ran", func(t *testing.T) {
		id := c.execute("count")
		c.reply(c.shellIn, id)
		out := c.outputs(id)
		want := strconv.Itoa(len(tests) + 1)
		if got := content(out[1])["data"].(map[string]any)["text/plain"]; got != want {
			t.Errorf("count %v; want %s", got, want)
		}
	})
}

func TestStalledSubscriberDoesNotStopOthers(t *testing.T) {
	k := testKernel(t, nil)
	// A subscriber that never reads: its socket buffers fill, then its queue in the kernel.
	stalled := dialZ(t, k.conn.IOPubPort, "SUB", nil)
	if _, err := stalled.c.Write(appendMessage(nil, [][]byte{{1}})); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, k) // waits for its own subscription, after the stalled one
	for k.iopub.subscribers() < 2 {
		time.Sleep(time.Millisecond)
	}
	// 3000 outputs of 4 KiB: 12 MiB, far more than the stalled peer's socket buffers hold.
	id := c.execute("spam 3000 4096")
	start := time.Now()
	r := c.reply(c.shellIn, id)
	if content(r)["status"] != "ok" {
		t.Fatal(content(r))
	}
	streams := 0
	for _, m := range c.outputs(id) {
		if m.header.MsgType == "stream" {
			streams++
		}
	}
	if streams != 3000 {
		t.Errorf("the reading client got %d of 3000 outputs", streams)
	}
	// The test means something only if the other subscriber really was stuck: output still waits for it.
	waiting := 0
	k.iopub.mu.Lock()
	for s := range k.iopub.subs {
		s.q.mu.Lock()
		waiting = max(waiting, len(s.q.items))
		s.q.mu.Unlock()
	}
	k.iopub.mu.Unlock()
	if waiting == 0 {
		t.Error("no subscriber has output waiting: the stalled one was not stalled")
	}
	t.Logf("3000 outputs to the reading client in %v with a stalled subscriber", time.Since(start))
}

func TestSendQueueDropsOnlyWhenFull(t *testing.T) {
	q := newSendQueue()
	for i := range queueMaxMessages {
		if !q.push([]byte{byte(i)}) {
			t.Fatalf("push %d dropped below the limit", i)
		}
	}
	if q.push([]byte{1}) {
		t.Fatal("push over the message limit was accepted")
	}
	if q.dropped.Load() != 1 {
		t.Errorf("dropped %d; want 1", q.dropped.Load())
	}
	big := newSendQueue()
	if !big.push(make([]byte, queueMaxBytes)) || big.push([]byte{1}) {
		t.Error("the byte limit is not enforced")
	}
}

func TestShutdown(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run("shutdown_request with restart="+strconv.FormatBool(restart)+" replies and stops the kernel", func(t *testing.T) {
			k := testKernel(t, nil)
			c := newClient(t, k)
			id := c.send(c.control, "shutdown_request", map[string]any{"restart": restart})
			r := c.reply(c.ctrlIn, id)
			if r.header.MsgType != "shutdown_reply" || content(r)["restart"] != restart {
				t.Fatalf("got %s %v", r.header.MsgType, content(r))
			}
			select {
			case <-k.closed:
			case <-time.After(3 * time.Second):
				t.Fatal("kernel still running after shutdown")
			}
		})
	}
}

func TestComms(t *testing.T) {
	k := testKernel(t, nil)
	c := newClient(t, k)
	t.Run("a comm_open to an unknown target is closed at once", func(t *testing.T) {
		id := c.send(c.shell, "comm_open", map[string]any{"comm_id": "abc", "target_name": "jupyter.widget.version", "data": map[string]any{}})
		out := c.outputs(id)
		if len(out) != 1 || out[0].header.MsgType != "comm_close" || content(out[0])["comm_id"] != "abc" {
			t.Fatalf("got %v", types(out))
		}
	})
	t.Run("comm_info replies with no comms", func(t *testing.T) {
		id := c.send(c.shell, "comm_info_request", map[string]any{})
		r := c.reply(c.shellIn, id)
		if content(r)["status"] != "ok" || len(content(r)["comms"].(map[string]any)) != 0 {
			t.Fatalf("got %v", content(r))
		}
	})
}

func TestLanguageRequests(t *testing.T) {
	k := testKernel(t, nil)
	c := newClient(t, k)
	tests := []struct {
		name    string
		typ     string
		content map[string]any
		want    map[string]any
	}{
		{"complete gives matches and the replaced span", "complete_request", map[string]any{"code": "pla", "cursor_pos": 3},
			map[string]any{"status": "ok", "matches": []any{"plan", "placement"}, "cursor_start": 0.0, "cursor_end": 3.0}},
		{"complete counts cursor positions in code points", "complete_request", map[string]any{"code": "é pla", "cursor_pos": 5},
			map[string]any{"status": "ok", "cursor_start": 2.0, "cursor_end": 5.0}},
		{"inspect finds a command", "inspect_request", map[string]any{"code": "print", "cursor_pos": 5, "detail_level": 0},
			map[string]any{"status": "ok", "found": true}},
		{"inspect reports an unknown word as not found", "inspect_request", map[string]any{"code": "zzz", "cursor_pos": 3},
			map[string]any{"status": "ok", "found": false}},
		{"is_complete says incomplete with an indent", "is_complete_request", map[string]any{"code": `load \`},
			map[string]any{"status": "incomplete", "indent": "  "}},
		{"is_complete says complete", "is_complete_request", map[string]any{"code": "print x"},
			map[string]any{"status": "complete"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := c.send(c.shell, tc.typ, tc.content)
			got := content(c.reply(c.shellIn, id))
			for key, want := range tc.want {
				g, _ := json.Marshal(got[key])
				w, _ := json.Marshal(want)
				if key == "matches" {
					m := got[key].([]any)
					slices.SortFunc(m, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
					g, _ = json.Marshal(m)
					wm := want.([]any)
					slices.SortFunc(wm, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
					w, _ = json.Marshal(wm)
				}
				if !bytes.Equal(g, w) {
					t.Errorf("%s = %s; want %s", key, g, w)
				}
			}
			c.outputs(id)
		})
	}
}

func TestInput(t *testing.T) {
	k := testKernel(t, nil)
	c := newClient(t, k)
	t.Run("input_request goes to the client's stdin and its reply reaches the cell", func(t *testing.T) {
		id := c.execute("input name?")
		req := recvFrom(t, c.stdinIn, "input_request", 5*time.Second)
		if req.header.MsgType != "input_request" || content(req)["prompt"] != "name?" || parentID(req) != id {
			t.Fatalf("got %s %v", req.header.MsgType, content(req))
		}
		h := Header{MsgID: "r1", Session: c.session, Username: "test", Date: jupyterTime(time.Now()), MsgType: "input_reply", Version: "5.3"}
		frames, _ := c.sign.encode(nil, h, req.rawHeader, nil, map[string]any{"value": "Ada"})
		if _, err := c.stdin.c.Write(appendMessage(nil, frames)); err != nil {
			t.Fatal(err)
		}
		c.reply(c.shellIn, id)
		out := c.outputs(id)
		if len(out) != 2 || content(out[1])["text"] != "got Ada\n" {
			t.Fatalf("outputs %v", types(out))
		}
	})
	t.Run("input without allow_stdin is an error", func(t *testing.T) {
		id := c.send(c.shell, "execute_request", map[string]any{"code": "input x", "allow_stdin": false})
		if s := content(c.reply(c.shellIn, id))["status"]; s != "error" {
			t.Fatalf("status %v", s)
		}
	})
}

func TestHistory(t *testing.T) {
	k := testKernel(t, nil)
	c := newClient(t, k)
	for _, code := range []string{"result 1", "print a", "result 1", "result 2"} {
		c.reply(c.shellIn, c.execute(code))
	}
	tests := []struct {
		name string
		req  map[string]any
		want string
	}{
		{"tail gives the last n cells", map[string]any{"hist_access_type": "tail", "n": 2, "output": false, "raw": true}, `[[1,3,"result 1"],[1,4,"result 2"]]`},
		{"tail with output pairs input and result", map[string]any{"hist_access_type": "tail", "n": 1, "output": true, "raw": true}, `[[1,4,["result 2","2"]]]`},
		{"range selects lines start to stop", map[string]any{"hist_access_type": "range", "session": 1, "start": 2, "stop": 3, "output": false, "raw": true}, `[[1,2,"print a"]]`},
		{"search matches a glob", map[string]any{"hist_access_type": "search", "pattern": "result*", "output": false, "raw": true}, `[[1,1,"result 1"],[1,3,"result 1"],[1,4,"result 2"]]`},
		{"search unique keeps the latest of each", map[string]any{"hist_access_type": "search", "pattern": "result*", "unique": true, "output": false, "raw": true}, `[[1,3,"result 1"],[1,4,"result 2"]]`},
		{"search n keeps the last n", map[string]any{"hist_access_type": "search", "pattern": "*", "n": 1, "output": false, "raw": true}, `[[1,4,"result 2"]]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := c.send(c.shell, "history_request", tc.req)
			var got struct {
				History json.RawMessage `json:"history"`
			}
			_ = json.Unmarshal(c.reply(c.shellIn, id).content, &got)
			if string(got.History) != tc.want {
				t.Errorf("history %s; want %s", got.History, tc.want)
			}
		})
	}
}

func TestHeartbeatEchoes(t *testing.T) {
	k := testKernel(t, nil)
	z := dialZ(t, k.conn.HBPort, "REQ", nil)
	ping := [][]byte{{}, []byte("ping 123")}
	if _, err := z.c.Write(appendMessage(nil, ping)); err != nil {
		t.Fatal(err)
	}
	frames, _, _, err := z.readMessage()
	if err != nil || len(frames) != 2 || string(frames[1]) != "ping 123" {
		t.Fatalf("echo %q, %v", frames, err)
	}
}

func TestHostilePeersDoNotBlockOthers(t *testing.T) {
	k := testKernel(t, nil)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(k.conn.ShellPort))
	silent, err := net.Dial("tcp", addr) // connects and never greets
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	garbage, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	// A valid greeting, then a READY whose property claims more bytes than it has.
	garbage.Write(greeting())
	garbage.Write(appendCommand(nil, "READY", []byte{11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e', 0, 0, 1}))
	c := newClient(t, k)
	id := c.send(c.shell, "kernel_info_request", map[string]any{})
	if r := c.reply(c.shellIn, id); r.header.MsgType != "kernel_info_reply" {
		t.Fatalf("got %s", r.header.MsgType)
	}
}

func TestIPCTransport(t *testing.T) {
	base := filepath.Join(t.TempDir(), "kernel")
	k, err := New(Config{
		Connection: ConnectionInfo{Transport: "ipc", IP: base, ShellPort: 1, IOPubPort: 2, StdinPort: 3, ControlPort: 4, HBPort: 5, Key: "k"},
		Logger:     testLogger(t),
	}, &testInterp{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("unix", base+"-5")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	z, err := handshake(c, "REQ", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(appendMessage(nil, [][]byte{{}, []byte("ping")})); err != nil {
		t.Fatal(err)
	}
	if frames, _, _, err := z.readMessage(); err != nil || string(frames[1]) != "ping" {
		t.Fatalf("heartbeat over ipc: %q %v", frames, err)
	}
}

// BenchmarkExecuteRoundTrip times execute_request to execute_reply over loopback TCP with a Go client, so
// the kernel's own share of the latency Jupyter clients see can be told apart from theirs.
func BenchmarkExecuteRoundTrip(b *testing.B) {
	k, err := New(Config{
		Connection: ConnectionInfo{Transport: "tcp", IP: "127.0.0.1", Key: "bench", SignatureScheme: "hmac-sha256"},
		Logger:     log.New(&logSink{}, "", 0),
	}, &testInterp{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Serve(ctx)
	s, _ := newSigner("hmac-sha256", "bench")
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(k.conn.ShellPort)))
	if err != nil {
		b.Fatal(err)
	}
	z, err := handshake(c, "DEALER", []byte("bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := Header{MsgID: strconv.Itoa(i), Session: "bench", Username: "b", MsgType: "execute_request", Version: "5.3"}
		frames, _ := s.encode(nil, h, nil, nil, map[string]any{"code": "result 1"})
		if _, err := c.Write(appendMessage(nil, frames)); err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := z.readMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPublisherDropsOnlyForTheStalledPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher("iopub", ln, func(string, ...any) {})
	defer p.close()
	dial := func() *zconn {
		z := dialZ(t, port(ln), "SUB", nil)
		if _, err := z.c.Write(appendMessage(nil, [][]byte{{1}})); err != nil {
			t.Fatal(err)
		}
		return z
	}
	dial() // stalled: never read
	healthy := dial()
	for p.subscribers() < 2 {
		time.Sleep(time.Millisecond)
	}
	got := make(chan int, 1)
	go func() {
		n := 0
		for {
			if _, _, _, err := healthy.readMessage(); err != nil {
				got <- n
				return
			}
			n++
			if n%500 == 0 {
				got <- n
			}
		}
	}()
	// 12000 messages of 8 KiB (94 MiB): past the stalled peer's socket buffers and its 64 MiB queue. The
	// publisher is paced by the healthy reader so that only the stalled peer can fall behind.
	const total, batch = 12000, 500
	msg := [][]byte{[]byte("topic"), bytes.Repeat([]byte("x"), 8<<10)}
	for sent := 0; sent < total; sent += batch {
		for range batch {
			p.publish(msg)
		}
		select {
		case n := <-got:
			if n != sent+batch {
				t.Fatalf("healthy subscriber has %d of %d", n, sent+batch)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("healthy subscriber stuck after %d messages", sent)
		}
	}
	var stalledDropped int64
	p.mu.Lock()
	for s := range p.subs {
		stalledDropped += s.q.dropped.Load()
	}
	p.mu.Unlock()
	if stalledDropped == 0 {
		t.Error("the stalled subscriber's queue never overflowed; the test did not test anything")
	}
	t.Logf("healthy: %d of %d; stalled peer dropped %d", total, total, stalledDropped)
}
