package kernel

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"time"
)

// delimiter separates routing identities from the signed parts of a Jupyter message.
const delimiter = "<IDS|MSG>"

// protocolVersion is the Jupyter messaging protocol version this kernel speaks.
const protocolVersion = "5.3"

// Header is a Jupyter message header.
type Header struct {
	MsgID    string `json:"msg_id"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	MsgType  string `json:"msg_type"`
	Version  string `json:"version"`
}

// message is one decoded Jupyter message. The JSON parts stay raw: a reply quotes the request's header
// verbatim as its parent_header, and content is decoded by the handler that knows its shape.
type message struct {
	route      []byte   // the ROUTER routing id of the peer it came from
	identities [][]byte // frames before the delimiter, echoed in front of replies
	header     Header
	rawHeader  json.RawMessage
	parent     json.RawMessage
	metadata   json.RawMessage
	content    json.RawMessage
	buffers    [][]byte
}

// DecodeError says why a frame list is not a valid Jupyter message.
type DecodeError struct{ Reason string }

// Error says why the message was dropped.
func (e *DecodeError) Error() string { return "jupyter message: " + e.Reason }

// errBadSignature marks messages whose HMAC does not verify; they are dropped and logged.
var errBadSignature = &DecodeError{"bad or missing signature"}

// signer signs and verifies messages with the connection file's key and scheme.
type signer struct {
	key  []byte // empty: no signing
	hash func() hash.Hash
}

// newSigner accepts Jupyter's signature schemes ("hmac-sha256" and friends; "" means hmac-sha256).
func newSigner(scheme, key string) (*signer, error) {
	s := &signer{key: []byte(key)}
	switch scheme {
	case "", "hmac-sha256":
		s.hash = sha256.New
	case "hmac-sha512":
		s.hash = sha512.New
	case "hmac-sha1":
		s.hash = sha1.New
	default:
		return nil, fmt.Errorf("signature_scheme %q is not supported (use hmac-sha256, hmac-sha512 or hmac-sha1)", scheme)
	}
	return s, nil
}

// sign returns the hex HMAC over the four signed parts, or "" when signing is off.
func (s *signer) sign(parts ...[]byte) []byte {
	if len(s.key) == 0 {
		return nil
	}
	m := hmac.New(s.hash, s.key)
	for _, p := range parts {
		m.Write(p)
	}
	sum := m.Sum(nil)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// verify checks a hex signature in constant time.
func (s *signer) verify(sig []byte, parts ...[]byte) bool {
	if len(s.key) == 0 {
		return true
	}
	got := make([]byte, hex.DecodedLen(len(sig)))
	if _, err := hex.Decode(got, sig); err != nil {
		return false
	}
	m := hmac.New(s.hash, s.key)
	for _, p := range parts {
		m.Write(p)
	}
	return hmac.Equal(got, m.Sum(nil))
}

// decode parses the frames of a message from a ROUTER socket (identities first). It checks the signature
// before it looks at any JSON, so an unsigned message costs no parsing.
func (s *signer) decode(frames [][]byte) (*message, error) {
	d := -1
	for i, f := range frames {
		if string(f) == delimiter {
			d = i
			break
		}
	}
	if d < 0 {
		return nil, &DecodeError{"no <IDS|MSG> delimiter"}
	}
	rest := frames[d+1:]
	if len(rest) < 5 {
		return nil, &DecodeError{fmt.Sprintf("%d frames after the delimiter; need signature, header, parent_header, metadata, content", len(rest))}
	}
	if !s.verify(rest[0], rest[1], rest[2], rest[3], rest[4]) {
		return nil, errBadSignature
	}
	m := &message{identities: frames[:d], rawHeader: rest[1], parent: rest[2], metadata: rest[3], content: rest[4], buffers: rest[5:]}
	for i, part := range []json.RawMessage{m.rawHeader, m.parent, m.metadata, m.content} {
		if !isObject(part) {
			return nil, &DecodeError{fmt.Sprintf("%s is not a JSON object", [...]string{"header", "parent_header", "metadata", "content"}[i])}
		}
	}
	if err := json.Unmarshal(m.rawHeader, &m.header); err != nil {
		return nil, &DecodeError{"header: " + err.Error()}
	}
	if m.header.MsgType == "" {
		return nil, &DecodeError{"header has no msg_type"}
	}
	return m, nil
}

// isObject reports whether b is one valid JSON object.
func isObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && json.Valid(b)
}

// encode builds the frames of an outgoing message: prefix frames (identities or a topic), the delimiter,
// the signature and the four JSON parts.
func (s *signer) encode(prefix [][]byte, h Header, parent json.RawMessage, metadata, content any) ([][]byte, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(parent) == 0 {
		parent = json.RawMessage("{}")
	}
	mb := []byte("{}")
	if metadata != nil {
		if mb, err = json.Marshal(metadata); err != nil {
			return nil, err
		}
	}
	cb, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("encoding %s content: %w", h.MsgType, err)
	}
	frames := make([][]byte, 0, len(prefix)+6)
	frames = append(frames, prefix...)
	frames = append(frames, []byte(delimiter), s.sign(hb, parent, mb, cb), hb, parent, mb, cb)
	return frames, nil
}

// jupyterTime formats a time as Jupyter's ISO 8601 dates, with microseconds and a zone.
func jupyterTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// isDecodeError reports whether err came from decode.
func isDecodeError(err error) bool {
	var de *DecodeError
	return errors.As(err, &de)
}
