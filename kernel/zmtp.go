package kernel

// A small ZMTP 3.0 implementation (rfc.zeromq.org/spec:23, NULL security only) serving the kernel's five
// sockets. go-zeromq/zmq4 v0.17.0 was the first choice, but reading it showed three ways a kernel built on it
// can be broken from outside: the handshake runs inside the accept loop (one silent connection blocks every
// later one), a READY command with a short property panics in Property.Write (slicing past the end), and a
// ROUTER or PUB send waits on the slowest peer while holding the socket lock. Here every connection does its
// handshake in its own goroutine under a deadline, every length is checked before it is used, and every peer
// has its own bounded send queue, so one peer can only ever hurt itself.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04

	greetingSize = 64

	// handshakeTimeout bounds how long a connection may take to greet us before it is dropped.
	handshakeTimeout = 10 * time.Second

	// maxMessageBytes bounds one incoming message (frames plus a per-frame allowance), so a peer that
	// announces a huge frame is disconnected instead of making us allocate it.
	maxMessageBytes = 256 << 20
	frameOverhead   = 32

	// eagerFrameBytes is the largest frame body allocated at its announced size before any of it arrives.
	eagerFrameBytes = 1 << 20
)

// errProtocol marks a peer that broke the ZMTP rules; the connection is closed.
var errProtocol = errors.New("zmtp: protocol error")

// greeting returns our 64-byte ZMTP 3.0 greeting for the NULL mechanism, as a non-server peer.
func greeting() []byte {
	g := make([]byte, greetingSize)
	g[0] = 0xFF // signature: %xFF padding(8) %x7F
	g[8] = 0x01 // libzmq puts a 1 here for ZMTP 1.0 peers; harmless and conventional
	g[9] = 0x7F
	g[10], g[11] = 3, 0 // version 3.0
	copy(g[12:32], "NULL")
	return g
}

// checkGreeting validates a peer's greeting: ZMTP 3.x with the NULL mechanism.
func checkGreeting(g []byte) error {
	if len(g) != greetingSize || g[0] != 0xFF || g[9]&0x01 == 0 {
		return fmt.Errorf("%w: not a ZMTP greeting", errProtocol)
	}
	if g[10] < 3 {
		return fmt.Errorf("%w: peer speaks ZMTP %d.%d; 3.0 or later is needed", errProtocol, g[10], g[11])
	}
	mech := string(bytes.TrimRight(g[12:32], "\x00"))
	if mech != "NULL" {
		return fmt.Errorf("%w: security mechanism %q is not supported (only NULL)", errProtocol, mech)
	}
	return nil
}

// zconn is one ZMTP connection after a successful handshake.
type zconn struct {
	c        net.Conn
	r        *bufio.Reader
	peerType string // the peer's Socket-Type, upper case
	identity []byte // the peer's Identity property, if it sent one
}

// compatible lists the peer socket types each of our socket types accepts (ZMTP 3.0, "Socket Types").
var compatible = map[string][]string{
	"ROUTER": {"DEALER", "REQ", "ROUTER"},
	"REP":    {"REQ", "DEALER"},
	"PUB":    {"SUB", "XSUB"},
	// Our own test clients.
	"DEALER": {"ROUTER", "REP", "DEALER"},
	"SUB":    {"PUB", "XPUB"},
	"REQ":    {"REP", "ROUTER"},
}

// handshake greets the peer and exchanges READY commands, advertising ourType and identity.
func handshake(c net.Conn, ourType string, identity []byte) (*zconn, error) {
	if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, err
	}
	z := &zconn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	if _, err := c.Write(greeting()); err != nil {
		return nil, err
	}
	g := make([]byte, greetingSize)
	if _, err := io.ReadFull(z.r, g); err != nil {
		return nil, fmt.Errorf("reading greeting: %w", err)
	}
	if err := checkGreeting(g); err != nil {
		_ = writeCommand(c, "ERROR", append([]byte{byte(len(err.Error()) & 0xff)}, truncate(err.Error(), 255)...))
		return nil, err
	}
	props := [][2]string{{"Socket-Type", ourType}}
	if ourType == "DEALER" || ourType == "REQ" || ourType == "ROUTER" {
		props = append(props, [2]string{"Identity", string(identity)})
	}
	if err := writeCommand(c, "READY", encodeProperties(props)); err != nil {
		return nil, err
	}
	flags, body, err := readFrame(z.r, maxMessageBytes)
	if err != nil {
		return nil, fmt.Errorf("reading READY: %w", err)
	}
	if flags&flagCommand == 0 {
		return nil, fmt.Errorf("%w: expected READY, got a message frame", errProtocol)
	}
	name, data, err := parseCommand(body)
	if err != nil {
		return nil, err
	}
	if name != "READY" {
		return nil, fmt.Errorf("%w: expected READY, got %q", errProtocol, name)
	}
	meta, err := parseProperties(data)
	if err != nil {
		return nil, err
	}
	z.peerType = strings.ToUpper(meta["socket-type"])
	z.identity = []byte(meta["identity"])
	ok := false
	for _, t := range compatible[ourType] {
		ok = ok || t == z.peerType
	}
	if !ok {
		msg := fmt.Sprintf("socket type %s cannot talk to %s", z.peerType, ourType)
		_ = writeCommand(c, "ERROR", append([]byte{byte(len(truncate(msg, 255)))}, truncate(msg, 255)...))
		return nil, fmt.Errorf("%w: %s", errProtocol, msg)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return z, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// encodeProperties writes ZMTP metadata: name-size(1) name value-size(4, big endian) value.
func encodeProperties(props [][2]string) []byte {
	var b []byte
	for _, p := range props {
		b = append(b, byte(len(p[0])))
		b = append(b, p[0]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p[1])))
		b = append(b, p[1]...)
	}
	return b
}

// parseProperties reads ZMTP metadata; names are case-insensitive, so keys come back lower case.
func parseProperties(b []byte) (map[string]string, error) {
	m := map[string]string{}
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || 1+n+4 > len(b) {
			return nil, fmt.Errorf("%w: truncated metadata property", errProtocol)
		}
		name := strings.ToLower(string(b[1 : 1+n]))
		b = b[1+n:]
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(v) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: metadata value for %q overruns the command", errProtocol, name)
		}
		m[name] = string(b[:v])
		b = b[v:]
	}
	return m, nil
}

// parseCommand splits a command frame body into its name and data.
func parseCommand(body []byte) (string, []byte, error) {
	if len(body) < 1 || int(body[0]) == 0 || 1+int(body[0]) > len(body) {
		return "", nil, fmt.Errorf("%w: malformed command", errProtocol)
	}
	n := int(body[0])
	return string(body[1 : 1+n]), body[1+n:], nil
}

// writeCommand sends one command frame directly on c (used only before the send queue exists).
func writeCommand(w io.Writer, name string, data []byte) error {
	_, err := w.Write(appendCommand(nil, name, data))
	return err
}

// appendCommand encodes a command frame.
func appendCommand(b []byte, name string, data []byte) []byte {
	body := make([]byte, 0, 1+len(name)+len(data))
	body = append(body, byte(len(name)))
	body = append(body, name...)
	body = append(body, data...)
	return appendFrame(b, flagCommand, body)
}

// appendFrame encodes one frame: flags, a 1- or 8-byte size, the body.
func appendFrame(b []byte, flags byte, body []byte) []byte {
	if len(body) > 255 {
		b = append(b, flags|flagLong)
		b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	} else {
		b = append(b, flags, byte(len(body)))
	}
	return append(b, body...)
}

// appendMessage encodes a multipart message.
func appendMessage(b []byte, frames [][]byte) []byte {
	for i, f := range frames {
		var fl byte
		if i < len(frames)-1 {
			fl = flagMore
		}
		b = appendFrame(b, fl, f)
	}
	return b
}

// readFrame reads one frame whose body is at most limit bytes.
func readFrame(r *bufio.Reader, limit int) (flags byte, body []byte, err error) {
	flags, err = r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	if flags&^(flagMore|flagLong|flagCommand) != 0 {
		return 0, nil, fmt.Errorf("%w: reserved frame flag bits set (%#x)", errProtocol, flags)
	}
	var size uint64
	if flags&flagLong != 0 {
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(b[:])
	} else {
		s, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		size = uint64(s)
	}
	if size > uint64(limit) {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes is over the %d-byte limit", errProtocol, size, limit)
	}
	if size <= eagerFrameBytes {
		body = make([]byte, size)
		if _, err = io.ReadFull(r, body); err != nil {
			return 0, nil, err
		}
		return flags, body, nil
	}
	// A large frame grows as its bytes arrive: a peer that announces 256 MiB and sends nothing (on many
	// connections, perhaps) must not make us allocate it all up front.
	var buf bytes.Buffer
	if n, err := io.CopyN(&buf, r, int64(size)); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("%w: frame of %d bytes ended after %d", io.ErrUnexpectedEOF, size, n)
		}
		return 0, nil, err
	}
	return flags, buf.Bytes(), nil
}

// readMessage reads the next multipart message, or one command (cmd != "").
func (z *zconn) readMessage() (frames [][]byte, cmd string, cmdData []byte, err error) {
	budget := maxMessageBytes
	for {
		flags, body, err := readFrame(z.r, budget)
		if err != nil {
			return nil, "", nil, err
		}
		if flags&flagCommand != 0 {
			if len(frames) > 0 || flags&flagMore != 0 {
				return nil, "", nil, fmt.Errorf("%w: command inside a multipart message", errProtocol)
			}
			name, data, err := parseCommand(body)
			if err != nil {
				return nil, "", nil, err
			}
			return nil, name, data, nil
		}
		frames = append(frames, body)
		budget -= len(body) + frameOverhead
		if budget < 0 {
			return nil, "", nil, fmt.Errorf("%w: message over %d bytes", errProtocol, maxMessageBytes)
		}
		if flags&flagMore == 0 {
			return frames, "", nil, nil
		}
	}
}

// pongFor answers a ZMTP 3.1 PING (ttl(2) context(0..16)) with a PONG carrying the same context.
func pongFor(data []byte) []byte {
	var ctx []byte
	if len(data) > 2 {
		ctx = data[2:]
		if len(ctx) > 16 {
			ctx = ctx[:16]
		}
	}
	return appendCommand(nil, "PONG", ctx)
}
