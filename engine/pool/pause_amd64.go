package pool

// pause is the x86 PAUSE instruction: a spin-wait hint that lets a hyperthread sibling run, lowers the spinning
// core's power (headroom the working cores can turbo into) and avoids the memory-order pipeline flush a tight
// polling loop takes when the polled line finally changes.
//
//go:noescape
func pause()
