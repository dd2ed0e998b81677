package respcompat

// INFO's Memory section, from the Go runtime (runtime/metrics) and the
// kernel (/proc/self/status, /proc/meminfo), under Redis's field names, so
// that redis-cli --stat and dashboards show real figures.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
)

var memSamples = []string{
	"/memory/classes/total:bytes",         // everything the runtime mapped
	"/memory/classes/heap/released:bytes", // given back to the kernel
	"/memory/classes/heap/free:bytes",     // free, not given back
	"/memory/classes/heap/objects:bytes",  // live and unswept objects
}

// usedMemory returns the bytes the Go runtime uses (mapped, less what is
// free or given back: Redis's used_memory, what its allocator holds) and
// the bytes of heap objects.
func usedMemory() (used, heap uint64) {
	ss := make([]metrics.Sample, len(memSamples))
	for i, n := range memSamples {
		ss[i].Name = n
	}
	metrics.Read(ss)
	v := func(i int) uint64 {
		if ss[i].Value.Kind() == metrics.KindUint64 {
			return ss[i].Value.Uint64()
		}
		return 0
	}
	return v(0) - v(1) - v(2), v(3)
}

// procKB returns the named fields (e.g. VmRSS, VmHWM, MemTotal) of a
// /proc file whose lines are "Name: N kB", in bytes; absent ones are 0.
func procKB(path string, names ...string) []uint64 {
	out := make([]uint64, len(names))
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for i, n := range names {
			if n == name {
				f := strings.Fields(rest)
				if len(f) > 0 {
					if v, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						out[i] = v << 10
					}
				}
			}
		}
	}
	return out
}

// memoryFields returns INFO's Memory section.
func (s *Server) memoryFields() []string {
	used, heap := usedMemory()
	for {
		old := s.peakUsed.Load()
		if used <= old || s.peakUsed.CompareAndSwap(old, used) {
			break
		}
	}
	peak := s.peakUsed.Load()
	st := procKB("/proc/self/status", "VmRSS", "VmHWM")
	rss, rssPeak := st[0], st[1]
	if rss == 0 { // no /proc: the runtime's own figure
		rss, rssPeak = used, peak
	}
	total := procKB("/proc/meminfo", "MemTotal")[0]
	s.mu.Lock()
	maxmem, policy := memBytes(s.maxmemory), s.policy
	s.mu.Unlock()
	frag := 0.0
	if used > 0 {
		frag = float64(rss) / float64(used)
	}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	return []string{
		"used_memory", u(used),
		"used_memory_human", humanBytes(used),
		"used_memory_rss", u(rss),
		"used_memory_rss_human", humanBytes(rss),
		"used_memory_peak", u(peak),
		"used_memory_peak_human", humanBytes(peak),
		"used_memory_rss_peak", u(rssPeak),
		"used_memory_dataset", u(heap),
		"total_system_memory", u(total),
		"total_system_memory_human", humanBytes(total),
		"maxmemory", u(maxmem),
		"maxmemory_human", humanBytes(maxmem),
		"maxmemory_policy", policy,
		"mem_fragmentation_ratio", strconv.FormatFloat(frag, 'f', 2, 64),
		"mem_allocator", "go",
	}
}

// humanBytes writes n as Redis's bytesToHuman does: 1.50K, 12.00M.
func humanBytes(n uint64) string {
	f := float64(n)
	for _, unit := range []string{"K", "M", "G", "T", "P"} {
		f /= 1024
		if f < 1024 || unit == "P" {
			if n < 1024 {
				return strconv.FormatUint(n, 10) + "B"
			}
			return fmt.Sprintf("%.2f%s", f, unit)
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// memBytes parses a Redis memory value (CONFIG SET maxmemory's: 100,
// 10k, 10kb, 1mb, 2gb...), as Redis's memtoll; 0 if it is not one.
func memBytes(v string) uint64 {
	v = strings.ToLower(v)
	mul := uint64(1)
	for _, u := range []struct {
		suffix string
		mul    uint64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mul = strings.TrimSuffix(v, u.suffix), u.mul
			break
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0
	}
	return n * mul
}
