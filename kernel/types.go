// Package kernel implements a Jupyter kernel (messaging protocol 5.3 over ZeroMQ).
// It knows nothing about TileLab's language: an Interpreter does the work.
package kernel

import "context"

// Bundle is one MIME bundle: data keyed by MIME type ("text/plain" always present), and metadata.
type Bundle struct {
	Data     map[string]any
	Metadata map[string]any
}

// Output is how an interpreter answers while a cell runs.
type Output interface {
	Stream(name, text string)                           // "stdout" or "stderr"
	Display(b Bundle, displayID string)                 // display_data; displayID may be ""
	Update(b Bundle, displayID string)                  // update_display_data
	Result(b Bundle)                                    // execute_result, at most once per cell
	Clear(wait bool)                                    // clear_output
	Page(b Bundle)                                      // a "page" payload in the execute_reply
	Input(prompt string, password bool) (string, error) // input_request; an error when stdin is not allowed
}

// Interpreter runs cells. The kernel calls its methods from one goroutine at a time.
type Interpreter interface {
	Execute(ctx context.Context, code string, out Output) error // ctx is cancelled on interrupt
	Complete(code string, cursor int) (matches []string, start, end int)
	Inspect(code string, cursor int, detail int) (Bundle, bool)
	IsComplete(code string) (status, indent string)
}
