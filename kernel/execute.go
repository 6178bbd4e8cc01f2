package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"unicode/utf8"
)

// NamedError is an error that names its kind; the kernel uses the name as the error message's ename
// (otherwise "Error"). Interpreters may implement it; it is optional.
type NamedError interface {
	error
	ErrorName() string
}

// TracebackError is an error that supplies its own traceback lines (otherwise the kernel writes one line,
// "ename: evalue"). Interpreters may implement it; it is optional. An empty traceback is replaced, since
// Notebook 6 draws nothing for an error without one.
type TracebackError interface {
	error
	Traceback() []string
}

// Cursor positions: Jupyter counts Unicode code points; the Interpreter gets and returns byte offsets into
// code, which is what Go string code wants. The kernel converts both ways.

// executeRequest is execute_request's content. Pointers tell a missing field from a false one: a missing
// store_history or stop_on_error means true, a missing allow_stdin false (as in ipykernel: a client that does
// not say it serves stdin would leave the cell waiting for ever).
type executeRequest struct {
	Code         string `json:"code"`
	Silent       bool   `json:"silent"`
	StoreHistory *bool  `json:"store_history"`
	AllowStdin   *bool  `json:"allow_stdin"`
	StopOnError  *bool  `json:"stop_on_error"`
}

func orTrue(b *bool) bool { return b == nil || *b }

// execute runs one cell, counting as ipykernel does: a stored cell takes the next execution_count; silent
// and store_history=false cells reuse the last one; a blank cell is not a cell.
func (k *Kernel) execute(m *message) {
	var req executeRequest
	if err := json.Unmarshal(m.content, &req); err != nil {
		k.replyError(m, "BadRequest", "execute_request content: "+err.Error(), nil)
		return
	}
	store := orTrue(req.StoreHistory) && !req.Silent
	count := k.count + 1
	if !req.Silent {
		k.publish("execute_input", m, map[string]any{"code": req.Code, "execution_count": count})
	}
	if strings.TrimSpace(req.Code) == "" {
		k.reply(k.shell, m, "execute_reply", map[string]any{"status": "ok", "execution_count": k.count, "payload": []any{}, "user_expressions": map[string]any{}}, map[string]any{"status": "ok"})
		return
	}
	if !store {
		count = k.count
	}

	ctx, cancel := context.WithCancel(context.Background())
	k.mu.Lock()
	k.running = cancel
	k.mu.Unlock()
	out := &cellOutput{k: k, parent: m, silent: req.Silent, count: count, allowStdin: req.AllowStdin != nil && *req.AllowStdin, ctx: ctx}
	err := k.runCell(ctx, req.Code, out)
	interrupted := ctx.Err() != nil
	k.mu.Lock()
	k.running = nil
	k.mu.Unlock()
	cancel()
	out.finish()

	if store {
		k.count = count
		k.hist.add(count, req.Code, out.resultText)
	}
	if err == nil && interrupted {
		err = context.Canceled
	}
	if err != nil {
		ename, evalue, tb := describeError(err, interrupted)
		if !req.Silent {
			k.publish("error", m, map[string]any{"ename": ename, "evalue": evalue, "traceback": tb})
		}
		k.reply(k.shell, m, "execute_reply", map[string]any{
			"status": "error", "execution_count": count, "ename": ename, "evalue": evalue, "traceback": tb,
			"payload": []any{}, "user_expressions": map[string]any{},
		}, map[string]any{"status": "error"})
		if orTrue(req.StopOnError) {
			k.abortQueued()
		}
		return
	}
	payload := out.payload
	if payload == nil {
		payload = []any{}
	}
	k.reply(k.shell, m, "execute_reply", map[string]any{"status": "ok", "execution_count": count, "payload": payload, "user_expressions": map[string]any{}}, map[string]any{"status": "ok"})
}

// runCell calls the Interpreter, turning a panic into an error so the kernel and its state survive.
func (k *Kernel) runCell(ctx context.Context, code string, out Output) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: string(debug.Stack())}
		}
	}()
	return k.interp.Execute(ctx, code, out)
}

type panicError struct {
	value any
	stack string
}

func (p *panicError) Error() string     { return fmt.Sprintf("the interpreter panicked: %v", p.value) }
func (p *panicError) ErrorName() string { return "Panic" }
func (p *panicError) Traceback() []string {
	return append([]string{"\x1b[0;31mPanic\x1b[0m: " + fmt.Sprint(p.value)}, strings.Split(strings.TrimSpace(p.stack), "\n")...)
}

// describeError builds an error message's ename, evalue and (never empty) traceback.
func describeError(err error, interrupted bool) (ename, evalue string, tb []string) {
	ename, evalue = "Error", err.Error()
	var ne NamedError
	if errors.As(err, &ne) {
		ename = ne.ErrorName()
	}
	if interrupted {
		ename = "Interrupted"
		if errors.Is(err, context.Canceled) {
			evalue = "the cell was interrupted"
		}
	}
	var te TracebackError
	if errors.As(err, &te) && !interrupted {
		tb = te.Traceback()
	}
	if len(tb) == 0 {
		tb = []string{"\x1b[0;31m" + ename + "\x1b[0m: " + evalue}
	}
	return ename, evalue, tb
}

// replyError answers a malformed execute_request with an error reply.
func (k *Kernel) replyError(m *message, ename, evalue string, tb []string) {
	if len(tb) == 0 {
		tb = []string{ename + ": " + evalue}
	}
	k.reply(k.shell, m, "execute_reply", map[string]any{"status": "error", "execution_count": k.count, "ename": ename, "evalue": evalue, "traceback": tb}, map[string]any{"status": "error"})
}

// abortQueued answers every execute_request that has already arrived with status "aborted", as ipykernel
// does after a failed cell with stop_on_error: a notebook's "run all" stops at the first error, and the
// cells behind it are told so instead of staying "running". Other requests read meanwhile are kept.
func (k *Kernel) abortQueued() {
	var keep []*message
	abort := func(m *message) {
		if m.header.MsgType != "execute_request" {
			keep = append(keep, m)
			return
		}
		k.status(m, "busy")
		k.reply(k.shell, m, "execute_reply", map[string]any{"status": "aborted"}, map[string]any{"status": "aborted"})
		k.status(m, "idle")
	}
	for _, m := range k.pending {
		abort(m)
	}
	for {
		select {
		case r := <-k.shell.in:
			if m := k.decode(k.shell, r); m != nil {
				abort(m)
			}
		default:
			k.pending = keep
			return
		}
	}
}

// cellOutput is the Output a running cell writes to. Interpreters may call it from several goroutines;
// once the cell has returned, late calls are dropped.
type cellOutput struct {
	k          *Kernel
	parent     *message
	silent     bool
	count      int
	allowStdin bool
	ctx        context.Context

	mu         sync.Mutex
	done       bool
	resulted   bool
	resultText *string
	payload    []any
}

func (o *cellOutput) finish() {
	o.mu.Lock()
	o.done = true
	o.mu.Unlock()
}

// emit publishes one output message unless the cell is silent or over.
func (o *cellOutput) emit(msgType string, content map[string]any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done || o.silent {
		return
	}
	if err := o.k.publish(msgType, o.parent, content); err != nil {
		// Say so in the notebook rather than lose the output without a trace.
		o.k.publish("stream", o.parent, map[string]any{"name": "stderr", "text": "tilelab kernel: " + msgType + " dropped: " + err.Error() + "\n"})
	}
}

func bundleData(b Bundle) map[string]any {
	if b.Data == nil {
		return map[string]any{"text/plain": ""}
	}
	return b.Data
}

func bundleMeta(b Bundle) map[string]any {
	if b.Metadata == nil {
		return map[string]any{}
	}
	return b.Metadata
}

func (o *cellOutput) Stream(name, text string) {
	if name != "stderr" {
		name = "stdout"
	}
	if text == "" {
		return
	}
	o.emit("stream", map[string]any{"name": name, "text": text})
}

func (o *cellOutput) Display(b Bundle, displayID string) {
	c := map[string]any{"data": bundleData(b), "metadata": bundleMeta(b)}
	if displayID != "" {
		c["transient"] = map[string]any{"display_id": displayID}
	}
	o.emit("display_data", c)
}

func (o *cellOutput) Update(b Bundle, displayID string) {
	o.emit("update_display_data", map[string]any{"data": bundleData(b), "metadata": bundleMeta(b), "transient": map[string]any{"display_id": displayID}})
}

// Result sends execute_result once; a second result in the same cell is shown as display_data.
func (o *cellOutput) Result(b Bundle) {
	o.mu.Lock()
	first := !o.resulted && !o.done
	o.resulted = true
	if first {
		if s, ok := b.Data["text/plain"].(string); ok {
			o.resultText = &s
		}
	}
	o.mu.Unlock()
	if !first {
		o.Display(b, "")
		return
	}
	o.emit("execute_result", map[string]any{"execution_count": o.count, "data": bundleData(b), "metadata": bundleMeta(b)})
}

func (o *cellOutput) Clear(wait bool) {
	o.emit("clear_output", map[string]any{"wait": wait})
}

func (o *cellOutput) Page(b Bundle) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		o.payload = append(o.payload, map[string]any{"source": "page", "data": bundleData(b), "start": 0})
	}
}

// Input asks the client that sent the cell for a line of input on the stdin socket, and waits for it or for
// an interrupt.
func (o *cellOutput) Input(prompt string, password bool) (string, error) {
	k := o.k
	o.mu.Lock()
	done := o.done
	o.mu.Unlock()
	if done {
		return "", errors.New("input requested after the cell finished")
	}
	if !o.allowStdin {
		return "", errors.New("this client does not accept input requests (allow_stdin is false)")
	}
	h := k.header("input_request")
	frames, err := k.sign.encode(o.parent.identities, h, o.parent.rawHeader, nil, map[string]any{"prompt": prompt, "password": password})
	if err != nil {
		return "", err
	}
	for len(k.inputWait) > 0 { // stale replies from an earlier, interrupted request
		<-k.inputWait
	}
	if err := k.stdin.send(o.parent.route, frames); err != nil {
		return "", fmt.Errorf("cannot ask for input: %w", err)
	}
	for {
		select {
		case m := <-k.inputWait:
			var ph Header
			_ = json.Unmarshal(m.parent, &ph)
			if ph.MsgID != h.MsgID {
				continue
			}
			var c struct {
				Value  string `json:"value"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(m.content, &c); err != nil {
				return "", fmt.Errorf("input_reply: %w", err)
			}
			if c.Status == "error" {
				return "", errors.New("the client could not read input")
			}
			return c.Value, nil
		case <-o.ctx.Done():
			return "", o.ctx.Err()
		case <-k.done:
			return "", errors.New("the kernel is shutting down")
		}
	}
}

// language serves complete, inspect and is_complete, converting cursor positions between Jupyter's code
// points and the Interpreter's byte offsets.
func (k *Kernel) language(m *message) {
	var req struct {
		Code        string `json:"code"`
		CursorPos   *int   `json:"cursor_pos"`
		DetailLevel int    `json:"detail_level"`
	}
	typ := strings.TrimSuffix(m.header.MsgType, "_request") + "_reply"
	if err := json.Unmarshal(m.content, &req); err != nil {
		k.reply(k.shell, m, typ, map[string]any{"status": "error", "ename": "BadRequest", "evalue": err.Error(), "traceback": []string{err.Error()}}, nil)
		return
	}
	cursor := len(req.Code)
	if req.CursorPos != nil {
		cursor = byteOffset(req.Code, *req.CursorPos)
	}
	var content map[string]any
	err := k.safely(func() {
		switch m.header.MsgType {
		case "complete_request":
			matches, start, end := k.interp.Complete(req.Code, cursor)
			if matches == nil {
				matches = []string{}
			}
			start, end = clamp(start, 0, len(req.Code)), clamp(end, 0, len(req.Code))
			content = map[string]any{"status": "ok", "matches": matches, "cursor_start": runeOffset(req.Code, start), "cursor_end": runeOffset(req.Code, end), "metadata": map[string]any{}}
		case "inspect_request":
			b, found := k.interp.Inspect(req.Code, cursor, req.DetailLevel)
			data, meta := map[string]any{}, map[string]any{}
			if found {
				data, meta = bundleData(b), bundleMeta(b)
			}
			content = map[string]any{"status": "ok", "found": found, "data": data, "metadata": meta}
		case "is_complete_request":
			status, indent := k.interp.IsComplete(req.Code)
			switch status {
			case "complete", "incomplete", "invalid", "unknown":
			default:
				status = "unknown"
			}
			content = map[string]any{"status": status}
			if status == "incomplete" {
				content["indent"] = indent
			}
		}
	})
	if err != nil {
		ename, evalue, tb := describeError(err, false)
		content = map[string]any{"status": "error", "ename": ename, "evalue": evalue, "traceback": tb}
	}
	k.reply(k.shell, m, typ, content, nil)
}

func (k *Kernel) safely(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: string(debug.Stack())}
			k.logf("interpreter panicked: %v", r)
		}
	}()
	f()
	return nil
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

// byteOffset converts a code-point offset into a byte offset within s (clamped to s).
func byteOffset(s string, runes int) int {
	if runes <= 0 {
		return 0
	}
	i := 0
	for n := 0; i < len(s) && n < runes; n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

// runeOffset converts a byte offset within s into a code-point offset.
func runeOffset(s string, bytes int) int {
	return utf8.RuneCountInString(s[:clamp(bytes, 0, len(s))])
}
