package workbench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCPUQuotaReadsCgroupFiles(t *testing.T) {
	write := func(root, rel, text string) {
		f := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(text+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("cgroup v2 with a quota on an ancestor", func(t *testing.T) {
		root := t.TempDir()
		write(root, "box/cpu.max", "150000 100000")
		write(root, "box/job/cpu.max", "max 100000")
		got := cpuQuota(root, "0::/box/job\n")
		if !strings.HasPrefix(got, "1.50 CPUs (") || !strings.Contains(got, filepath.Join("box", "cpu.max")) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("cgroup v2 without a quota", func(t *testing.T) {
		root := t.TempDir()
		write(root, "box/cpu.max", "max 100000")
		if got := cpuQuota(root, "0::/box\n"); got != "none" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("cgroup v1, the smaller of two quotas", func(t *testing.T) {
		root := t.TempDir()
		write(root, "cpu,cpuacct/a/cpu.cfs_quota_us", "800000")
		write(root, "cpu,cpuacct/a/cpu.cfs_period_us", "100000")
		write(root, "cpu,cpuacct/a/b/cpu.cfs_quota_us", "200000")
		write(root, "cpu,cpuacct/a/b/cpu.cfs_period_us", "100000")
		self := "9:memory:/x\n3:cpu,cpuacct:/a/b\n0::/\n"
		if got := cpuQuota(root, self); !strings.HasPrefix(got, "2.00 CPUs") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("cgroup v1 with no quota (-1) and missing files", func(t *testing.T) {
		root := t.TempDir()
		write(root, "cpu/cpu.cfs_quota_us", "-1")
		write(root, "cpu/cpu.cfs_period_us", "100000")
		if got := cpuQuota(root, "1:cpu:/\n2:cpuacct:/gone\nnonsense\n"); got != "none" {
			t.Fatalf("got %q", got)
		}
	})
}
