package kernel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

func testSigner(t testing.TB, key string) *signer {
	s, err := newSigner("hmac-sha256", key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, key := range []string{"secret", ""} {
		name := "with a key"
		if key == "" {
			name = "with an empty key (no signing)"
		}
		t.Run(name+" a message survives encode and decode", func(t *testing.T) {
			s := testSigner(t, key)
			h := Header{MsgID: "m1", Session: "s", Username: "u", Date: "d", MsgType: "execute_request", Version: "5.3"}
			frames, err := s.encode([][]byte{[]byte("id1")}, h, json.RawMessage(`{"msg_id":"p"}`), map[string]any{"k": 1}, map[string]any{"code": "print 1"})
			if err != nil {
				t.Fatal(err)
			}
			if key == "" && len(frames[2]) != 0 {
				t.Errorf("signature %q with an empty key", frames[2])
			}
			m, err := s.decode(append(frames, []byte("buffer")))
			if err != nil {
				t.Fatal(err)
			}
			if m.header != h || string(m.parent) != `{"msg_id":"p"}` || string(m.identities[0]) != "id1" || string(m.buffers[0]) != "buffer" {
				t.Errorf("decoded %+v", m)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	s := testSigner(t, "k")
	hdr := []byte(`{"msg_id":"1","session":"s","username":"u","date":"","msg_type":"x","version":"5.3"}`)
	signed := func(h, p, m, c string) [][]byte {
		return [][]byte{[]byte(delimiter), s.sign([]byte(h), []byte(p), []byte(m), []byte(c)), []byte(h), []byte(p), []byte(m), []byte(c)}
	}
	tests := []struct {
		name   string
		frames [][]byte
		want   string
	}{
		{"no frames at all", nil, "no <IDS|MSG> delimiter"},
		{"frames without a delimiter", [][]byte{[]byte("a"), []byte("b")}, "no <IDS|MSG> delimiter"},
		{"a delimiter with too few frames after it", [][]byte{[]byte(delimiter), []byte("sig"), hdr}, "2 frames after the delimiter"},
		{"a signature made with another key", func() [][]byte {
			f := signed(string(hdr), "{}", "{}", "{}")
			f[1] = testSigner(t, "other").sign(hdr, []byte("{}"), []byte("{}"), []byte("{}"))
			return f
		}(), "bad or missing signature"},
		{"content changed after signing", func() [][]byte { f := signed(string(hdr), "{}", "{}", "{}"); f[5] = []byte(`{"a":1}`); return f }(), "bad or missing signature"},
		{"an empty signature", func() [][]byte { f := signed(string(hdr), "{}", "{}", "{}"); f[1] = nil; return f }(), "bad or missing signature"},
		{"a header that is a JSON array", signed("[]", "{}", "{}", "{}"), "header is not a JSON object"},
		{"content that is invalid JSON", signed(string(hdr), "{}", "{}", "{"), "content is not a JSON object"},
		{"metadata that is a string", signed(string(hdr), "{}", `"x"`, "{}"), "metadata is not a JSON object"},
		{"a header without msg_type", signed(`{"msg_id":"1"}`, "{}", "{}", "{}"), "header has no msg_type"},
		{"a header whose msg_type is a number", signed(`{"msg_type":3}`, "{}", "{}", "{}"), "header: json"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			_, err := s.decode(tc.frames)
			var de *DecodeError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want a DecodeError containing %q", err, tc.want)
			}
		})
	}
}

func TestSignerSchemes(t *testing.T) {
	for _, scheme := range []string{"", "hmac-sha256", "hmac-sha512", "hmac-sha1"} {
		t.Run("scheme "+scheme+" signs and verifies", func(t *testing.T) {
			s, err := newSigner(scheme, "key")
			if err != nil {
				t.Fatal(err)
			}
			sig := s.sign([]byte("a"), []byte("b"))
			if !s.verify(sig, []byte("a"), []byte("b")) || s.verify(sig, []byte("a"), []byte("c")) {
				t.Error("verify disagrees with sign")
			}
		})
	}
	if _, err := newSigner("hmac-md4", "k"); err == nil || !strings.Contains(err.Error(), "hmac-md4") {
		t.Errorf("unknown scheme: %v", err)
	}
}

// FuzzDecode feeds arbitrary frames to the decoder: it must return a message or an error, never panic,
// and anything it accepts must be signed and well formed.
func FuzzDecode(f *testing.F) {
	s := testSigner(f, "fuzz")
	h := Header{MsgID: "1", Session: "s", Username: "u", Date: "d", MsgType: "execute_request", Version: "5.3"}
	good, _ := s.encode([][]byte{[]byte("id")}, h, nil, nil, map[string]any{"code": "x"})
	f.Add(bytes.Join(good, []byte{0}), true)
	f.Add([]byte("<IDS|MSG>\x00sig\x00{}\x00{}\x00{}\x00{}"), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, resign bool) {
		frames := bytes.Split(data, []byte{0})
		if resign {
			// Re-sign so the fuzzer also reaches the JSON checks behind the signature.
			for i, fr := range frames {
				if string(fr) == delimiter && len(frames) >= i+6 {
					frames[i+1] = s.sign(frames[i+2], frames[i+3], frames[i+4], frames[i+5])
					break
				}
			}
		}
		m, err := s.decode(frames)
		if err != nil {
			if !isDecodeError(err) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if m.header.MsgType == "" || !isObject(m.content) || !isObject(m.parent) || !isObject(m.metadata) {
			t.Fatalf("accepted a malformed message: %+v", m)
		}
	})
}

func TestZMTPFraming(t *testing.T) {
	t.Run("messages of short and long frames round-trip", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		frames := [][]byte{{}, make([]byte, 255), make([]byte, 256), make([]byte, 70000), make([]byte, eagerFrameBytes+3)}
		for _, f := range frames {
			for i := range f {
				f[i] = byte(rng.Uint32())
			}
		}
		z := &zconn{r: bufio.NewReader(bytes.NewReader(appendMessage(nil, frames)))}
		got, cmd, _, err := z.readMessage()
		if err != nil || cmd != "" || len(got) != len(frames) {
			t.Fatalf("got %d frames, cmd %q, %v", len(got), cmd, err)
		}
		for i := range frames {
			if !bytes.Equal(got[i], frames[i]) {
				t.Errorf("frame %d differs", i)
			}
		}
	})
	t.Run("a large frame that never arrives is not allocated up front", func(t *testing.T) {
		// 200 MiB announced, 10 bytes sent.
		wire := binary.BigEndian.AppendUint64([]byte{flagLong}, 200<<20)
		wire = append(wire, make([]byte, 10)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		z := &zconn{r: bufio.NewReader(bytes.NewReader(wire))}
		_, _, _, err := z.readMessage()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("error %v; want an unexpected EOF", err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("reading it allocated %d MiB", grew>>20)
		}
	})
	bad := []struct {
		name string
		wire []byte
		want string
	}{
		{"a frame announcing more than the limit", append([]byte{flagLong}, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "over the"},
		{"reserved flag bits", []byte{0x80, 0}, "reserved frame flag bits"},
		{"a command inside a multipart message", append(appendFrame(nil, flagMore, []byte("a")), appendCommand(nil, "PING", nil)...), "command inside a multipart message"},
		{"a command with an empty name", appendFrame(nil, flagCommand, []byte{0}), "malformed command"},
		{"a command whose name overruns it", appendFrame(nil, flagCommand, []byte{9, 'a'}), "malformed command"},
	}
	for _, tc := range bad {
		t.Run(tc.name+" is a protocol error", func(t *testing.T) {
			z := &zconn{r: bufio.NewReader(bytes.NewReader(tc.wire))}
			_, _, _, err := z.readMessage()
			if !errors.Is(err, errProtocol) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want a protocol error containing %q", err, tc.want)
			}
		})
	}
}

func TestZMTPMetadata(t *testing.T) {
	t.Run("properties round-trip with names case-insensitive", func(t *testing.T) {
		m, err := parseProperties(encodeProperties([][2]string{{"Socket-Type", "DEALER"}, {"Identity", "abc"}}))
		if err != nil || m["socket-type"] != "DEALER" || m["identity"] != "abc" {
			t.Fatalf("%v %v", m, err)
		}
	})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"an empty name", []byte{0, 0, 0, 0, 0}},
		{"a name longer than the data", []byte{9, 'a'}},
		{"a value length past the end", []byte{1, 'a', 0, 0, 0, 9, 'x'}},
		{"a missing value length", []byte{1, 'a', 0, 0}},
	} {
		t.Run(tc.name+" is rejected without a panic", func(t *testing.T) {
			if _, err := parseProperties(tc.b); !errors.Is(err, errProtocol) {
				t.Fatalf("error %v", err)
			}
		})
	}
	t.Run("a greeting with another mechanism is refused", func(t *testing.T) {
		g := greeting()
		copy(g[12:32], "CURVE\x00\x00\x00\x00")
		if err := checkGreeting(g); err == nil || !strings.Contains(err.Error(), "CURVE") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("a ZMTP 2 greeting is refused", func(t *testing.T) {
		g := greeting()
		g[10] = 1
		if err := checkGreeting(g); err == nil || !strings.Contains(err.Error(), "3.0 or later") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"get*", "get threads", true},
		{"get*", "print get", false},
		{"*threads", "get threads", true},
		{"g?t*", "got x", true},
		{"*", "", true},
		{"a*b*c", "a-b-b-c", true},
		{"a*b*c", "a-b-b-d", false},
		{"[gp]et", "pet", true},
		{"[^gp]et", "pet", false},
		{"[a-c]x", "bx", true},
		{"[a-c]x", "dx", false},
		{"x[", "x[", true},
		{"*é", "café", true},
		{"?", "é", true},
		{"get*", "get\nthreads", true},
	}
	for _, tc := range tests {
		if got := glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v; want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestCursorConversion(t *testing.T) {
	s := "aé€😀b"
	for runes, want := range []int{0, 1, 3, 6, 10, 11} {
		if got := byteOffset(s, runes); got != want {
			t.Errorf("byteOffset(%d) = %d; want %d", runes, got, want)
		}
		if got := runeOffset(s, want); got != runes {
			t.Errorf("runeOffset(%d) = %d; want %d", want, got, runes)
		}
	}
	if byteOffset(s, 99) != len(s) || byteOffset(s, -1) != 0 || runeOffset(s, 99) != 5 {
		t.Error("offsets past the ends are not clamped")
	}
}

// FuzzZMTP feeds arbitrary bytes to the frame reader and the metadata parser: errors are fine, panics and
// frames longer than the input are not.
func FuzzZMTP(f *testing.F) {
	f.Add(appendMessage(nil, [][]byte{[]byte("a"), make([]byte, 300)}))
	f.Add(appendCommand(nil, "READY", encodeProperties([][2]string{{"Socket-Type", "DEALER"}})))
	f.Add([]byte{flagLong, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		z := &zconn{r: bufio.NewReader(bytes.NewReader(data))}
		for {
			frames, cmd, cdata, err := z.readMessage()
			if err != nil {
				break
			}
			total := len(cdata)
			for _, fr := range frames {
				total += len(fr)
			}
			if total > len(data) {
				t.Fatalf("read %d bytes of frames from %d bytes of input", total, len(data))
			}
			if cmd == "READY" {
				_, _ = parseProperties(cdata)
			}
		}
		_, _ = parseProperties(data)
	})
}
