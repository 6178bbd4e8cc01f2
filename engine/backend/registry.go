package backend

import "fmt"

// Registry holds the buffer types and backends a session can use. Backends are kept in priority order: the
// scheduler offers each op to the first one added, then the next.
type Registry struct {
	bufferTypes []BufferType
	backends    []Backend
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// AddBufferType registers a buffer type; a later one with the same name replaces the earlier.
func (r *Registry) AddBufferType(bt BufferType) {
	for i, b := range r.bufferTypes {
		if b.Name() == bt.Name() {
			r.bufferTypes[i] = bt
			return
		}
	}
	r.bufferTypes = append(r.bufferTypes, bt)
}

// BufferType looks a buffer type up by name.
func (r *Registry) BufferType(name string) (BufferType, error) {
	for _, b := range r.bufferTypes {
		if b.Name() == name {
			return b, nil
		}
	}
	return nil, fmt.Errorf("no buffer type %q is registered", name)
}

// BufferTypes lists the registered buffer types in registration order.
func (r *Registry) BufferTypes() []BufferType { return r.bufferTypes }

// AddBackend registers a backend after those already registered (so with lower priority).
func (r *Registry) AddBackend(b Backend) { r.backends = append(r.backends, b) }

// Backends lists the backends in priority order.
func (r *Registry) Backends() []Backend { return r.backends }
