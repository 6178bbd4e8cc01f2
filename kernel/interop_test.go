package kernel

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/google/uuid"
)

// TestInteropWithZmq4 talks to the kernel with go-zeromq/zmq4, a ZMTP implementation written by others, so
// `go test` checks the wire format against more than our own client (the Python tests add libzmq).
func TestInteropWithZmq4(t *testing.T) {
	k := testKernel(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ep := func(p int) string { return "tcp://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }

	sub := zmq4.NewSub(ctx)
	defer sub.Close()
	if err := sub.Dial(ep(k.conn.IOPubPort)); err != nil {
		t.Fatal(err)
	}
	if err := sub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		t.Fatal(err)
	}
	session := uuid.NewString()
	dealer := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(session)))
	defer dealer.Close()
	if err := dealer.Dial(ep(k.conn.ShellPort)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for k.iopub.subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("zmq4's subscription never arrived")
		}
		time.Sleep(time.Millisecond)
	}

	s, _ := newSigner(k.conn.SignatureScheme, k.conn.Key)
	h := Header{MsgID: uuid.NewString(), Session: session, Username: "zmq4", Date: jupyterTime(time.Now()), MsgType: "execute_request", Version: protocolVersion}
	frames, err := s.encode(nil, h, nil, nil, map[string]any{"code": "result 7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := dealer.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		t.Fatal(err)
	}
	msg, err := dealer.Recv()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := s.decode(msg.Frames)
	if err != nil {
		t.Fatal(err)
	}
	if reply.header.MsgType != "execute_reply" || content(reply)["status"] != "ok" || parentID(reply) != h.MsgID {
		t.Fatalf("reply %s %v", reply.header.MsgType, content(reply))
	}
	var seen []string
	for {
		msg, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.decode(msg.Frames[1:]) // the topic frame first
		if err != nil {
			t.Fatal(err)
		}
		if parentID(m) != h.MsgID {
			continue
		}
		seen = append(seen, m.header.MsgType)
		if m.header.MsgType == "status" && content(m)["execution_state"] == "idle" {
			break
		}
	}
	want := []string{"status", "execute_input", "execute_result", "status"}
	if len(seen) != len(want) {
		t.Fatalf("iopub %v; want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("iopub %v; want %v", seen, want)
		}
	}
}
