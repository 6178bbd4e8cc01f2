package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Info describes the kernel and its language, for kernel_info_reply.
type Info struct {
	Implementation        string       // e.g. "tilelab"
	ImplementationVersion string       // e.g. "0.1.0"
	Language              LanguageInfo // the language the Interpreter runs
	Banner                string       // shown by consoles at start
	HelpLinks             []HelpLink   // shown in notebook Help menus
}

// LanguageInfo is kernel_info_reply's language_info.
type LanguageInfo struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	MIMEType       string `json:"mimetype"`
	FileExtension  string `json:"file_extension"`
	PygmentsLexer  string `json:"pygments_lexer,omitempty"`
	CodeMirrorMode string `json:"codemirror_mode,omitempty"`
}

// HelpLink is one entry of kernel_info_reply's help_links.
type HelpLink struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}

// Config is what New needs besides the Interpreter.
type Config struct {
	Connection ConnectionInfo
	Info       Info
	// Logger receives dropped messages, failed handshakes and other trouble; nil means standard error.
	// Jupyter shows a kernel's standard error in its server log.
	Logger *log.Logger
	// TrapSIGINT makes SIGINT cancel the running cell instead of killing the process (Jupyter sends
	// SIGINT when a kernelspec's interrupt_mode is "signal", and users press Ctrl-C in consoles).
	TrapSIGINT bool
}

// Kernel serves one Interpreter over Jupyter's five sockets.
//
// One goroutine reads each socket. Shell requests run one at a time, in order, on the shell goroutine, which
// is the only one that calls the Interpreter; control requests (interrupt, shutdown, kernel_info) are served
// by their own goroutine while a cell runs. Nothing a client does can block the output to another client.
type Kernel struct {
	cfg     Config
	interp  Interpreter
	sign    *signer
	session string
	topic   string
	logger  *log.Logger
	limiter logLimiter

	shell, control, stdin *router
	iopub                 *publisher
	hb                    *heartbeat
	conn                  ConnectionInfo // with the ports actually bound

	done     chan struct{}
	stopOnce sync.Once
	closed   chan struct{}

	mu        sync.Mutex
	running   context.CancelFunc // cancels the running cell; nil between cells
	greeted   bool               // the first request has been served (see waitForSubscriber)
	startedAt time.Time

	// Owned by the shell goroutine.
	pending   []*message // shell requests read while aborting, still to serve
	count     int        // execution_count of the last cell that stored history
	inputWait chan *message

	hist history
}

// New binds the five sockets described by cfg.Connection; Serve then answers on them.
func New(cfg Config, interp Interpreter) (*Kernel, error) {
	if interp == nil {
		return nil, errors.New("kernel: no interpreter")
	}
	ci := cfg.Connection
	if err := ci.check(); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	sign, err := newSigner(ci.SignatureScheme, ci.Key)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	k := &Kernel{
		cfg:       cfg,
		interp:    interp,
		sign:      sign,
		session:   uuid.NewString(),
		logger:    cfg.Logger,
		done:      make(chan struct{}),
		closed:    make(chan struct{}),
		startedAt: time.Now(),
		inputWait: make(chan *message, 16),
	}
	if k.logger == nil {
		k.logger = log.New(os.Stderr, "tilelab kernel: ", log.LstdFlags)
	}
	k.topic = "kernel." + k.session + "."
	k.hist.session = 1

	ports := []*int{&ci.ShellPort, &ci.ControlPort, &ci.StdinPort, &ci.IOPubPort, &ci.HBPort}
	names := []string{"shell", "control", "stdin", "iopub", "hb"}
	var lns []interface{ Close() error }
	fail := func(err error) (*Kernel, error) {
		for _, l := range lns {
			l.Close()
		}
		return nil, fmt.Errorf("kernel: %w", err)
	}
	for i, p := range ports {
		network, addr, err := endpoint(ci.Transport, ci.IP, *p)
		if err != nil {
			return fail(err)
		}
		ln, err := listen(network, addr)
		if err != nil {
			return fail(fmt.Errorf("%s socket: %w", names[i], err))
		}
		lns = append(lns, ln)
		if network == "tcp" {
			*p = port(ln)
		}
		switch names[i] {
		case "shell":
			k.shell = newRouter("shell", ln, k.logf)
		case "control":
			k.control = newRouter("control", ln, k.logf)
		case "stdin":
			k.stdin = newRouter("stdin", ln, k.logf)
		case "iopub":
			k.iopub = newPublisher("iopub", ln, k.logf)
		case "hb":
			k.hb = newHeartbeat("hb", ln, k.logf)
		}
	}
	k.conn = ci
	return k, nil
}

// Connection reports the connection info with the ports actually bound (useful when some were 0).
func (k *Kernel) Connection() ConnectionInfo { return k.conn }

// Serve answers requests until a shutdown_request arrives or ctx is done, then closes the sockets.
func (k *Kernel) Serve(ctx context.Context) error {
	if k.cfg.TrapSIGINT {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		defer signal.Stop(sig)
		go func() {
			for {
				select {
				case <-sig:
					k.logf("SIGINT: interrupting the running cell")
					k.Interrupt()
				case <-k.done:
					return
				}
			}
		}()
	}
	k.publish("status", nil, map[string]any{"execution_state": "starting"})
	go k.shellLoop()
	go k.controlLoop()
	go k.stdinLoop()
	select {
	case <-ctx.Done():
		k.stop()
	case <-k.done:
	}
	<-k.closed
	return nil
}

// Interrupt cancels the running cell's context, as interrupt_request and SIGINT do. It reports whether a
// cell was running.
func (k *Kernel) Interrupt() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.running != nil {
		k.running()
		return true
	}
	return false
}

// stop closes everything once: it lets queued replies and output go out first (briefly), then closes.
func (k *Kernel) stop() {
	k.stopOnce.Do(func() {
		close(k.done)
		k.Interrupt()
		go func() {
			defer close(k.closed)
			const flush = time.Second
			var wg sync.WaitGroup
			for _, f := range []func(time.Duration){k.shell.flushAndClose, k.control.flushAndClose, k.stdin.flushAndClose, k.iopub.flushAndClose} {
				wg.Add(1)
				go func() { defer wg.Done(); f(flush) }()
			}
			wg.Wait()
			k.hb.close()
		}()
	})
}

// logLimiter keeps a flood of bad messages from flooding the log: at most 20 lines per second.
type logLimiter struct {
	mu         sync.Mutex
	window     time.Time
	n, dropped int
}

func (k *Kernel) logf(format string, args ...any) {
	l := &k.limiter
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.window) > time.Second {
		if l.dropped > 0 {
			k.logger.Printf("(%d more log lines suppressed)", l.dropped)
		}
		l.window, l.n, l.dropped = now, 0, 0
	}
	l.n++
	if l.n > 20 {
		l.dropped++
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	k.logger.Printf(format, args...)
}

// header makes a fresh header for an outgoing message.
func (k *Kernel) header(msgType string) Header {
	return Header{MsgID: uuid.NewString(), Session: k.session, Username: "tilelab", Date: jupyterTime(time.Now()), MsgType: msgType, Version: protocolVersion}
}

// publish sends one IOPub message; parent may be nil (for the starting status). It fails only when the
// content cannot be encoded as JSON (an interpreter's bundle holding a NaN, say); that is logged too.
func (k *Kernel) publish(msgType string, parent *message, content any) error {
	var ph json.RawMessage
	if parent != nil {
		ph = parent.rawHeader
	}
	frames, err := k.sign.encode([][]byte{[]byte(k.topic + msgType)}, k.header(msgType), ph, nil, content)
	if err != nil {
		k.logf("iopub: %v", err)
		return err
	}
	k.iopub.publish(frames)
	return nil
}

// reply answers req on the socket it came in on.
func (k *Kernel) reply(sock *router, req *message, msgType string, content any, metadata any) {
	prefix := req.identities
	frames, err := k.sign.encode(prefix, k.header(msgType), req.rawHeader, metadata, content)
	if err != nil {
		k.logf("%s: %v", sock.name, err)
		return
	}
	if err := sock.send(req.route, frames); err != nil {
		k.logf("%v", err)
	}
}

func (k *Kernel) status(parent *message, state string) {
	k.publish("status", parent, map[string]any{"execution_state": state})
}

// decode turns routed frames into a message, logging and dropping what is malformed or badly signed.
func (k *Kernel) decode(sock *router, r routed) *message {
	m, err := k.sign.decode(r.frames)
	if err != nil {
		if err == errBadSignature {
			k.logf("%s: dropped a message with a bad or missing signature (peer %q)", sock.name, r.id)
		} else {
			k.logf("%s: dropped a malformed message (peer %q): %v", sock.name, r.id, err)
		}
		return nil
	}
	m.route = r.id
	return m
}

// waitForSubscriber holds the very first request until some IOPub subscriber has joined, for at most
// half a second. Clients connect all their sockets at once, but TCP connections finish in any order: a
// kernel_info_request can arrive before the same client's subscription, and then the client never sees the
// busy/idle it waits for and asks again a fraction of a second later (jupyter_client's wait_for_ready does).
func (k *Kernel) waitForSubscriber() {
	k.mu.Lock()
	greeted := k.greeted
	k.greeted = true
	k.mu.Unlock()
	if greeted {
		return
	}
	deadline := time.NewTimer(500 * time.Millisecond)
	defer deadline.Stop()
	for k.iopub.subscribers() == 0 {
		select {
		case <-k.iopub.joined:
		case <-deadline.C:
			return
		case <-k.done:
			return
		}
	}
}

func (k *Kernel) shellLoop() {
	for {
		var m *message
		if len(k.pending) > 0 {
			m, k.pending = k.pending[0], k.pending[1:]
		} else {
			select {
			case r := <-k.shell.in:
				if m = k.decode(k.shell, r); m == nil {
					continue
				}
			case <-k.done:
				return
			}
		}
		k.serve(k.shell, m)
		select {
		case <-k.done:
			return
		default:
		}
	}
}

func (k *Kernel) controlLoop() {
	for {
		select {
		case r := <-k.control.in:
			if m := k.decode(k.control, r); m != nil {
				k.serve(k.control, m)
			}
		case <-k.done:
			return
		}
	}
}

func (k *Kernel) stdinLoop() {
	for {
		select {
		case r := <-k.stdin.in:
			m := k.decode(k.stdin, r)
			if m == nil {
				continue
			}
			if m.header.MsgType != "input_reply" {
				k.logf("stdin: ignored a %s message", m.header.MsgType)
				continue
			}
			select {
			case k.inputWait <- m:
			default:
				k.logf("stdin: dropped an input_reply nobody was waiting for")
			}
		case <-k.done:
			return
		}
	}
}

// serve runs one request between busy and idle.
func (k *Kernel) serve(sock *router, m *message) {
	k.waitForSubscriber()
	k.status(m, "busy")
	shutdown := false
	func() {
		defer func() {
			if r := recover(); r != nil {
				k.logf("%s: %s handler panicked: %v", sock.name, m.header.MsgType, r)
			}
		}()
		shutdown = k.dispatch(sock, m)
	}()
	k.status(m, "idle")
	if shutdown {
		k.stop()
	}
}

// dispatch answers one request; it reports whether the kernel should now shut down.
func (k *Kernel) dispatch(sock *router, m *message) bool {
	onShell := sock == k.shell
	switch t := m.header.MsgType; t {
	case "kernel_info_request":
		k.kernelInfo(sock, m)
	case "execute_request":
		if !onShell {
			k.logf("%s: execute_request belongs on shell; ignored", sock.name)
			return false
		}
		k.execute(m)
	case "complete_request", "inspect_request", "is_complete_request":
		if !onShell {
			k.logf("%s: %s belongs on shell; ignored", sock.name, t)
			return false
		}
		k.language(m)
	case "history_request":
		k.history(sock, m)
	case "comm_info_request":
		k.reply(sock, m, "comm_info_reply", map[string]any{"status": "ok", "comms": map[string]any{}}, nil)
	case "comm_open":
		// No comm targets exist here: close at once, politely (widgets probe jupyter.widget.version).
		var c struct {
			CommID string `json:"comm_id"`
		}
		_ = json.Unmarshal(m.content, &c)
		k.publish("comm_close", m, map[string]any{"comm_id": c.CommID, "data": map[string]any{}})
	case "comm_msg", "comm_close":
		// For comms we never opened: nothing to do.
	case "connect_request":
		ci := k.conn
		k.reply(sock, m, "connect_reply", map[string]any{"status": "ok", "shell_port": ci.ShellPort, "iopub_port": ci.IOPubPort, "stdin_port": ci.StdinPort, "hb_port": ci.HBPort, "control_port": ci.ControlPort}, nil)
	case "interrupt_request":
		k.Interrupt()
		k.reply(sock, m, "interrupt_reply", map[string]any{"status": "ok"}, nil)
	case "shutdown_request":
		var c struct {
			Restart bool `json:"restart"`
		}
		_ = json.Unmarshal(m.content, &c)
		content := map[string]any{"status": "ok", "restart": c.Restart}
		k.reply(sock, m, "shutdown_reply", content, nil)
		k.publish("shutdown_reply", m, content)
		// A restart is the manager's job: it waits for this process to exit and starts a fresh one.
		return true
	default:
		k.logf("%s: unknown message type %q ignored", sock.name, t)
	}
	return false
}

func (k *Kernel) kernelInfo(sock *router, m *message) {
	info := k.cfg.Info
	links := info.HelpLinks
	if links == nil {
		links = []HelpLink{}
	}
	k.reply(sock, m, "kernel_info_reply", map[string]any{
		"status":                 "ok",
		"protocol_version":       protocolVersion,
		"implementation":         info.Implementation,
		"implementation_version": info.ImplementationVersion,
		"language_info":          info.Language,
		"banner":                 info.Banner,
		"help_links":             links,
		"debugger":               false,
	}, nil)
}
