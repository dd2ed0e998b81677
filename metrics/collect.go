package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreStats are the store's counts, as storage.Stats has them (main.go
// converts one to the other; the fields must stay the same).
type StoreStats struct {
	Keys               int
	KeysCreated        uint64
	Evicted            uint64
	LogWrites          uint64
	LogErrors          uint64
	LogBytes           uint64
	LogDuration        time.Duration
	Checkpoints        uint64
	CheckpointErrors   uint64
	CheckpointBytes    uint64
	CheckpointDuration time.Duration
	LastSave           time.Time
	Healthy            bool
}

// StoreSource gives the store's counts at each scrape. Stats must be cheap:
// it must not read every key.
type StoreSource interface{ Stats() StoreStats }

// StoreFunc adapts a function to a StoreSource.
type StoreFunc func() StoreStats

func (f StoreFunc) Stats() StoreStats { return f() }

// RESPStats are the RESP server's counts, as respcompat.Stats has them.
type RESPStats struct {
	Connected int    // clients connected now
	Accepted  uint64 // connections accepted
	Rejected  uint64 // connections refused for --maxclients
	// Commands counts the commands run, by lower-case name; unknown
	// commands are counted under "unknown".
	Commands map[string]uint64
}

// RESPSource gives the RESP server's counts at each scrape.
type RESPSource interface{ Stats() RESPStats }

// RESPFunc adapts a function to a RESPSource.
type RESPFunc func() RESPStats

func (f RESPFunc) Stats() RESPStats { return f() }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descKeys        = desc("bucketd_keys", "Keys held in memory; a key whose buckets have all refilled is dropped at the next sweep, within about 5 s.")
	descMaxKeys     = desc("bucketd_max_keys", "The --max-keys bound on bucketd_keys (0: no bound).")
	descKeysCreated = desc("bucketd_keys_created_total", "Keys added by takes and sets.")
	descEvictions   = desc("bucketd_evictions_total", "Keys evicted to stay within --max-keys.")
	descWrites      = desc("bucketd_persistence_writes_total", "Writes to disk, by kind: log (one write and fdatasync of the write-ahead log, shared by a group of takes; not the writes out without a sync every 100ms under --sync interval) or checkpoint (the changed buckets into the data file).", "kind")
	descErrors      = desc("bucketd_persistence_errors_total", "Writes to disk that failed, by kind (log, checkpoint).", "kind")
	descBytes       = desc("bucketd_persistence_written_bytes_total", "Bytes written to disk, by kind (log, checkpoint).", "kind")
	descDuration    = desc("bucketd_persistence_write_duration_seconds_total", "Time spent writing to disk, by kind (log, checkpoint).", "kind")
	descLastSave    = desc("bucketd_persistence_last_success_timestamp_seconds", "When changes last reached the disk, as a Unix time.")
	descHealthy     = desc("bucketd_store_healthy", "1 while the store is open and its writes succeed (GET /readyz answers 200), else 0.")

	descConnected = desc("bucketd_resp_connected_clients", "RESP clients connected now.")
	descAccepted  = desc("bucketd_resp_connections_total", "RESP connections accepted.")
	descRejected  = desc("bucketd_resp_rejected_connections_total", "RESP connections refused for --maxclients.")
	descCommands  = desc("bucketd_resp_commands_total", `RESP commands run, by lower-case name ("unknown" for every unknown command).`, "command")
)

// storeCollector reads a StoreSource at each scrape.
type storeCollector struct {
	src     StoreSource
	maxKeys int
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKeys, descMaxKeys, descKeysCreated, descEvictions,
		descWrites, descErrors, descBytes, descDuration, descLastSave, descHealthy} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descKeys, float64(s.Keys))
	gauge(descMaxKeys, float64(c.maxKeys))
	counter(descKeysCreated, float64(s.KeysCreated))
	counter(descEvictions, float64(s.Evicted))
	counter(descWrites, float64(s.LogWrites), "log")
	counter(descWrites, float64(s.Checkpoints), "checkpoint")
	counter(descErrors, float64(s.LogErrors), "log")
	counter(descErrors, float64(s.CheckpointErrors), "checkpoint")
	counter(descBytes, float64(s.LogBytes), "log")
	counter(descBytes, float64(s.CheckpointBytes), "checkpoint")
	counter(descDuration, s.LogDuration.Seconds(), "log")
	counter(descDuration, s.CheckpointDuration.Seconds(), "checkpoint")
	gauge(descLastSave, float64(s.LastSave.UnixNano())/1e9)
	gauge(descHealthy, b2f(s.Healthy))
}

// respCollector reads a RESPSource at each scrape.
type respCollector struct{ src RESPSource }

func (c *respCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descAccepted, descRejected, descCommands} {
		ch <- d
	}
}

func (c *respCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, float64(s.Connected))
	ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(s.Accepted))
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.Rejected))
	for name, n := range s.Commands {
		ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(n), name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
