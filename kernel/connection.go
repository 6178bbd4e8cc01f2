package kernel

import (
	"encoding/json"
	"fmt"
	"os"
)

// ConnectionInfo is a Jupyter connection file: where the five sockets listen and how messages are signed.
// A port of 0 asks the kernel to pick a free one (Kernel.Connection reports what it chose).
type ConnectionInfo struct {
	Transport       string `json:"transport"`
	IP              string `json:"ip"`
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	Key             string `json:"key"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name,omitempty"`
}

// ReadConnectionFile reads and checks a connection file.
func ReadConnectionFile(path string) (ConnectionInfo, error) {
	var ci ConnectionInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return ci, err
	}
	if err := json.Unmarshal(b, &ci); err != nil {
		return ci, fmt.Errorf("connection file %s: %w", path, err)
	}
	if err := ci.check(); err != nil {
		return ci, fmt.Errorf("connection file %s: %w", path, err)
	}
	return ci, nil
}

func (ci ConnectionInfo) check() error {
	if ci.IP == "" {
		return fmt.Errorf("no ip")
	}
	for name, p := range map[string]int{"shell_port": ci.ShellPort, "iopub_port": ci.IOPubPort, "stdin_port": ci.StdinPort, "control_port": ci.ControlPort, "hb_port": ci.HBPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%s %d is out of range", name, p)
		}
	}
	if _, _, err := endpoint(ci.Transport, ci.IP, 0); err != nil {
		return err
	}
	if _, err := newSigner(ci.SignatureScheme, ci.Key); err != nil {
		return err
	}
	return nil
}
