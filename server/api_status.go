package server

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// processStart is when the process started, near enough: when this package
// was initialized. Uptime is the process's, whatever the servers.
var processStart = time.Now()

// statusJSON is GET /v1/status's answer: what an operator checks first.
type statusJSON struct {
	Version       string  `json:"version"`
	GoVersion     string  `json:"go_version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	LiveBuckets   int     `json:"live_buckets"` // keys with a bucket that is not full
	Evictions     uint64  `json:"evictions"`    // keys evicted for --max-keys
	Memory        struct {
		HeapBytes    uint64 `json:"heap_bytes"`    // live and not yet swept heap objects
		RuntimeBytes uint64 `json:"runtime_bytes"` // every byte the Go runtime has mapped
		RSSBytes     uint64 `json:"rss_bytes"`     // resident set size; 0 where unknown
	} `json:"memory"`
	Goroutines  int `json:"goroutines"`
	Persistence struct {
		Healthy  bool      `json:"healthy"`
		Error    string    `json:"error,omitempty"`       // why not healthy
		LastSave time.Time `json:"last_save"`             // when every change was last durable
		SaveAge  float64   `json:"last_save_age_seconds"` // seconds since then
	} `json:"persistence"`
	CLThrottle struct {
		Allowed uint64 `json:"allowed"`
		Denied  uint64 `json:"denied"`
	} `json:"cl_throttle"`
}

// apiStatus serves GET /v1/status: live buckets, memory, persistence
// health, uptime and version, for the dashboard and whoever is on call.
func (s *Server) apiStatus(c *fiber.Ctx) error {
	var st statusJSON
	st.Version, st.GoVersion = buildVersion()
	now := time.Now()
	st.UptimeSeconds = now.Sub(processStart).Seconds()
	n, err := s.lim.Len()
	if err != nil {
		return limiterError(err, "", "")
	}
	st.LiveBuckets = n
	st.Evictions = s.lim.Evicted()
	st.Memory.HeapBytes, st.Memory.RuntimeBytes = runtimeMemory()
	st.Memory.RSSBytes = rss()
	st.Goroutines = runtime.NumGoroutine()
	st.Persistence.Healthy = true
	if err := s.lim.Ready(); err != nil {
		st.Persistence.Healthy, st.Persistence.Error = false, err.Error()
	}
	if last := s.lim.LastSave(); !last.IsZero() {
		st.Persistence.LastSave = last.UTC()
		st.Persistence.SaveAge = max(0, now.Sub(last).Seconds())
	}
	cell := s.lim.CellCounts()
	st.CLThrottle.Allowed, st.CLThrottle.Denied = cell.Allowed, cell.Denied
	return sendJSON(c, &st)
}

// buildVersion returns the module's version, with the VCS revision when
// the binary was built from a checkout, and Go's version.
func buildVersion() (version, goVersion string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", runtime.Version()
	}
	version = bi.Main.Version
	var rev, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	if rev != "" && !strings.Contains(version, rev[:min(12, len(rev))]) {
		version += " " + rev[:min(12, len(rev))]
		if modified == "true" {
			version += "+dirty"
		}
	}
	return version, bi.GoVersion
}

// runtimeMemory reads the heap and the runtime's total from runtime/metrics,
// which, unlike runtime.ReadMemStats, does not stop the world.
func runtimeMemory() (heap, total uint64) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	metrics.Read(samples)
	if samples[0].Value.Kind() == metrics.KindUint64 {
		heap = samples[0].Value.Uint64()
	}
	if samples[1].Value.Kind() == metrics.KindUint64 {
		total = samples[1].Value.Uint64()
	}
	return heap, total
}

// rss returns the process's resident set size in bytes, from Linux's
// /proc/self/statm; 0 elsewhere.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
