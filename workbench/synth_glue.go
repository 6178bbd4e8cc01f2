package workbench

import "tilelab/engine/gguf"

// synthHeader builds a preset's metadata in memory; engine/synth has not landed yet.
func (c *ctxCall) synthHeader(param, preset, quant string, layers int) (*gguf.File, string, error) {
	return nil, "", c.errAt(param, "plan a GGUF file until then", "not available yet: engine/synth has not landed")
}

// synthCached generates a preset into the cache folder once and returns its path; engine/synth has not landed.
func (c *ctxCall) synthCached(param, preset, quant string, layers int) (string, string, error) {
	return "", "", c.errAt(param, "load a GGUF file until then", "not available yet: engine/synth has not landed")
}
