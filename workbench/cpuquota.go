package workbench

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuQuota says how many CPUs the process's cgroup lets it use, read from the cgroup files under root (normally
// /sys/fs/cgroup) for the cgroups listed in selfCgroup (the text of /proc/self/cgroup): "none" when no quota
// applies, else the share and where it comes from. A quota below the thread count makes the worker pool wait for
// throttled workers at every op, so a bench table from such a process measures the quota.
func cpuQuota(root, selfCgroup string) string {
	best, from := 0.0, ""
	consider := func(cpus float64, file string) {
		if cpus > 0 && (best == 0 || cpus < best) {
			best, from = cpus, file
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(selfCgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		controllers, p := parts[1], parts[2]
		// The cgroup and every ancestor: a quota on any of them applies.
		for dir := p; ; dir = path.Dir(dir) {
			if controllers == "" { // cgroup v2: cpu.max is "max PERIOD" or "QUOTA PERIOD"
				f := filepath.Join(root, dir, "cpu.max")
				if q, per, ok := twoInts(readTrim(f)); ok { // a missing file reads as "", which twoInts refuses
					consider(q/per, f)
				}
			} else if hasController(controllers, "cpu") { // cgroup v1: cpu.cfs_quota_us, -1 for none
				for _, mount := range []string{"cpu", "cpu,cpuacct", "cpuacct,cpu"} {
					qf := filepath.Join(root, mount, dir, "cpu.cfs_quota_us")
					pf := filepath.Join(root, mount, dir, "cpu.cfs_period_us")
					q, err1 := strconv.ParseFloat(readTrim(qf), 64)
					per, err2 := strconv.ParseFloat(readTrim(pf), 64)
					if err1 == nil && err2 == nil && q > 0 && per > 0 {
						consider(q/per, qf)
						break
					}
				}
			}
			if dir == "/" || dir == "." || dir == "" {
				break
			}
		}
	}
	if best == 0 {
		return "none"
	}
	return fmt.Sprintf("%.2f CPUs (%s)", best, from)
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

func readTrim(f string) string {
	b, err := os.ReadFile(f)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// twoInts reads "QUOTA PERIOD" of a cgroup v2 cpu.max; ok is false for "max PERIOD" (no quota) and bad text.
func twoInts(s string) (a, b float64, ok bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, false
	}
	a, err1 := strconv.ParseFloat(f[0], 64)
	b, err2 := strconv.ParseFloat(f[1], 64)
	return a, b, err1 == nil && err2 == nil && a > 0 && b > 0
}

// processCPUQuota is cpuQuota for this process.
func processCPUQuota() string {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "unknown (no /proc/self/cgroup)"
	}
	return cpuQuota("/sys/fs/cgroup", string(self))
}
