package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Queue limits per peer. A peer over either limit loses new messages (ZeroMQ's high-water-mark rule for PUB
// and ROUTER) while everyone else carries on.
const (
	queueMaxMessages = 10000
	queueMaxBytes    = 64 << 20
)

// sendQueue is one peer's outgoing queue, drained by that peer's writer goroutine.
type sendQueue struct {
	mu      sync.Mutex
	items   [][]byte // encoded messages or commands
	bytes   int
	closed  bool
	wake    chan struct{}
	drained chan struct{} // closed when the writer has flushed everything after close
	dropped atomic.Int64
}

func newSendQueue() *sendQueue {
	return &sendQueue{wake: make(chan struct{}, 1), drained: make(chan struct{})}
}

// push queues an encoded message; it never blocks, and reports false when the message was dropped.
func (q *sendQueue) push(b []byte) bool {
	q.mu.Lock()
	if q.closed || len(q.items) >= queueMaxMessages || q.bytes+len(b) > queueMaxBytes {
		q.mu.Unlock()
		q.dropped.Add(1)
		return false
	}
	q.items = append(q.items, b)
	q.bytes += len(b)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// close stops new pushes; the writer still flushes what is queued.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run writes queued messages to c until the queue is closed and empty or a write fails. Messages queued
// together go out in one write.
func (q *sendQueue) run(c net.Conn) error {
	defer close(q.drained)
	w := bufio.NewWriterSize(c, 64<<10)
	var batch [][]byte
	for {
		q.mu.Lock()
		batch, q.items = q.items, batch[:0]
		q.bytes = 0
		closed := q.closed
		q.mu.Unlock()
		for i, b := range batch {
			if _, err := w.Write(b); err != nil {
				q.discard()
				return err
			}
			batch[i] = nil
		}
		if err := w.Flush(); err != nil {
			q.discard()
			return err
		}
		if closed && len(batch) == 0 {
			return nil
		}
		if len(batch) == 0 {
			<-q.wake
		}
	}
}

// discard empties and closes the queue after its connection failed.
func (q *sendQueue) discard() {
	q.mu.Lock()
	q.items, q.bytes, q.closed = nil, 0, true
	q.mu.Unlock()
}

// endpoint is one socket's address from a connection file.
func endpoint(transport, ip string, port int) (network, addr string, err error) {
	switch transport {
	case "", "tcp":
		return "tcp", net.JoinHostPort(ip, strconv.Itoa(port)), nil
	case "ipc":
		// Jupyter's ipc endpoints are files named IP-PORT.
		return "unix", ip + "-" + strconv.Itoa(port), nil
	}
	return "", "", fmt.Errorf("transport %q is not supported (tcp or ipc)", transport)
}

// listen opens a listener; for ipc a stale socket file left by a dead kernel is removed first.
func listen(network, addr string) (net.Listener, error) {
	if network == "unix" {
		if fi, err := os.Stat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(addr)
		}
	}
	return net.Listen(network, addr)
}

// port reports a listener's TCP port (0 for ipc).
func port(l net.Listener) int {
	if a, ok := l.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	if a := l.Addr().String(); strings.Contains(a, "-") {
		p, _ := strconv.Atoi(a[strings.LastIndex(a, "-")+1:])
		return p
	}
	return 0
}

// server holds what every socket kind shares: the listener, live connections, a logger, shutdown.
type server struct {
	kind string
	name string // shell, control, stdin, iopub, hb: for logs
	ln   net.Listener
	logf func(format string, args ...any)

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

func newServer(kind, name string, ln net.Listener, logf func(string, ...any)) *server {
	return &server{kind: kind, name: name, ln: ln, logf: logf, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
}

// accept hands each new connection, after its handshake, to serve in a goroutine of its own.
func (s *server) accept(serve func(z *zconn)) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.logf("%s: accept: %v", s.name, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			z, err := handshake(c, s.kind, nil)
			if err != nil {
				s.logf("%s: handshake with %s failed: %v", s.name, c.RemoteAddr(), err)
				return
			}
			serve(z)
		}()
	}
}

// close stops accepting and closes every connection (after waitFlush, for queued output).
func (s *server) close() {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	close(s.done)
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// routed is one message that arrived on a ROUTER socket, with the sender's routing id.
type routed struct {
	id     []byte
	frames [][]byte
}

// router is a ROUTER socket: messages arrive tagged with the peer's routing id, and replies are sent back to
// that id. A peer that reconnects with the same identity takes the routing id over (ZMQ_ROUTER_HANDOVER).
type router struct {
	*server
	in     chan routed
	peers  map[string]*sendQueue
	nextID atomic.Uint32
}

func newRouter(name string, ln net.Listener, logf func(string, ...any)) *router {
	r := &router{server: newServer("ROUTER", name, ln, logf), in: make(chan routed, 4096), peers: map[string]*sendQueue{}}
	go r.accept(r.serve)
	return r
}

func (r *router) serve(z *zconn) {
	id := z.identity
	if len(id) == 0 || id[0] == 0 {
		// libzmq's convention for generated ids: a zero byte, then a counter. Identities starting with a
		// zero byte are reserved for this, so a peer cannot spoof one.
		n := r.nextID.Add(1)
		id = []byte{0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	q := newSendQueue()
	r.mu.Lock()
	if old, ok := r.peers[string(id)]; ok {
		old.close()
	}
	r.peers[string(id)] = q
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.peers[string(id)] == q {
			delete(r.peers, string(id))
		}
		r.mu.Unlock()
		q.close()
	}()
	go func() {
		if err := q.run(z.c); err != nil {
			z.c.Close()
		}
	}()
	for {
		frames, cmd, data, err := z.readMessage()
		if err != nil {
			if errors.Is(err, errProtocol) {
				r.logf("%s: dropping connection %s: %v", r.name, z.c.RemoteAddr(), err)
			}
			return
		}
		switch cmd {
		case "":
		case "PING":
			q.push(pongFor(data))
			continue
		case "ERROR":
			return
		default:
			continue // other commands mean nothing to a ROUTER
		}
		select {
		case r.in <- routed{id: id, frames: frames}:
		case <-r.done:
			return
		}
	}
}

// send queues a message for the peer with this routing id; it never blocks. When no peer has that id but
// exactly one peer is connected, that one gets it: a client whose stdin socket has another identity than its
// shell socket still gets its input_request.
func (r *router) send(id []byte, frames [][]byte) error {
	r.mu.Lock()
	q := r.peers[string(id)]
	if q == nil && len(r.peers) == 1 {
		for _, only := range r.peers {
			q = only
		}
	}
	r.mu.Unlock()
	if q == nil {
		return fmt.Errorf("%s: no peer with routing id %q", r.name, id)
	}
	if !q.push(appendMessage(nil, frames)) {
		return fmt.Errorf("%s: peer %q is not reading; message dropped", r.name, id)
	}
	return nil
}

// flush waits (up to d) until every peer's queue has been written out, then closes the socket.
func (r *router) flushAndClose(d time.Duration) {
	r.mu.Lock()
	qs := make([]*sendQueue, 0, len(r.peers))
	for _, q := range r.peers {
		q.close()
		qs = append(qs, q)
	}
	r.mu.Unlock()
	waitDrained(qs, d)
	r.close()
}

func waitDrained(qs []*sendQueue, d time.Duration) {
	deadline := time.After(d)
	for _, q := range qs {
		select {
		case <-q.drained:
		case <-deadline:
			return
		}
	}
}

// subscriber is one PUB peer: its subscriptions and its own queue.
type subscriber struct {
	q      *sendQueue
	mu     sync.Mutex
	topics map[string]int // prefix -> count (subscribing twice needs two cancels, as in libzmq)
}

func (s *subscriber) matches(topic []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.topics {
		if bytes.HasPrefix(topic, []byte(p)) {
			return true
		}
	}
	return false
}

func (s *subscriber) subscribe(topic []byte, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.topics[string(topic)]++
		return
	}
	if s.topics[string(topic)] > 1 {
		s.topics[string(topic)]--
	} else {
		delete(s.topics, string(topic))
	}
}

// publisher is a PUB socket. Each message is encoded once and pushed onto the queue of every subscriber whose
// subscriptions match its first frame; a subscriber that stops reading only fills, then overflows, its own
// queue (ZMTP PUB-SUB, rfc.zeromq.org/spec:29: a full subscriber queue drops, it never blocks the publisher).
type publisher struct {
	*server
	subs     map[*subscriber]struct{}
	joined   chan struct{} // receives a token each time some peer subscribes
	dropped  atomic.Int64
	accepted atomic.Int64
}

func newPublisher(name string, ln net.Listener, logf func(string, ...any)) *publisher {
	p := &publisher{server: newServer("PUB", name, ln, logf), subs: map[*subscriber]struct{}{}, joined: make(chan struct{}, 1)}
	go p.accept(p.serve)
	return p
}

func (p *publisher) serve(z *zconn) {
	s := &subscriber{q: newSendQueue(), topics: map[string]int{}}
	p.mu.Lock()
	p.subs[s] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.subs, s)
		p.mu.Unlock()
		s.q.close()
		p.dropped.Add(s.q.dropped.Load())
	}()
	go func() {
		if err := s.q.run(z.c); err != nil {
			z.c.Close()
		}
	}()
	for {
		frames, cmd, data, err := z.readMessage()
		if err != nil {
			if errors.Is(err, errProtocol) {
				p.logf("%s: dropping subscriber %s: %v", p.name, z.c.RemoteAddr(), err)
			}
			return
		}
		switch {
		case cmd == "SUBSCRIBE" || cmd == "CANCEL": // ZMTP 3.1 peers
			s.subscribe(data, cmd == "SUBSCRIBE")
		case cmd == "PING":
			s.q.push(pongFor(data))
		case cmd == "ERROR":
			return
		case cmd != "":
		case len(frames) == 1 && len(frames[0]) > 0 && frames[0][0] <= 1: // ZMTP 3.0: %x01 or %x00, then the topic
			s.subscribe(frames[0][1:], frames[0][0] == 1)
		default:
			continue // a SUB sends nothing else; ignore it rather than guess
		}
		if cmd == "SUBSCRIBE" || (cmd == "" && frames[0][0] == 1) {
			select {
			case p.joined <- struct{}{}:
			default:
			}
		}
	}
}

// publish sends frames to every matching subscriber without ever waiting on one.
func (p *publisher) publish(frames [][]byte) {
	b := appendMessage(nil, frames)
	var topic []byte
	if len(frames) > 0 {
		topic = frames[0]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.subs {
		if s.matches(topic) {
			if s.q.push(b) {
				p.accepted.Add(1)
			}
		}
	}
}

// subscribers counts peers with at least one subscription.
func (p *publisher) subscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for s := range p.subs {
		s.mu.Lock()
		if len(s.topics) > 0 {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

func (p *publisher) flushAndClose(d time.Duration) {
	p.mu.Lock()
	qs := make([]*sendQueue, 0, len(p.subs))
	for s := range p.subs {
		s.q.close()
		qs = append(qs, s.q)
	}
	p.mu.Unlock()
	waitDrained(qs, d)
	p.close()
}

// heartbeat is the REP socket Jupyter pings: every message comes straight back to its sender. Echoing the
// whole message (envelope included) is exactly a REP's reply to a REQ ping.
type heartbeat struct{ *server }

func newHeartbeat(name string, ln net.Listener, logf func(string, ...any)) *heartbeat {
	h := &heartbeat{newServer("REP", name, ln, logf)}
	go h.accept(h.serve)
	return h
}

func (h *heartbeat) serve(z *zconn) {
	var buf []byte
	for {
		frames, cmd, data, err := z.readMessage()
		if err != nil {
			return
		}
		switch cmd {
		case "":
			buf = appendMessage(buf[:0], frames)
		case "PING":
			buf = pongFor(data)
		case "ERROR":
			return
		default:
			continue
		}
		_ = z.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := z.c.Write(buf); err != nil {
			return
		}
	}
}
