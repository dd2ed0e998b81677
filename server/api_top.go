package server

import (
	"strconv"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/topk"
	"github.com/gofiber/fiber/v2"
)

// Watcher is what the dashboard's routes, GET /v1/top and GET /v1/status,
// need of the limiter (package limiter implements it).
type Watcher interface {
	// Top returns the limit keys refused most over the last window, most
	// first; Policy "" is CL.THROTTLE's. Counts are upper bounds, at most
	// Error above the truth.
	Top(window time.Duration, limit int) []topk.Entry
	// TopSpan returns the longest window Top answers for.
	TopSpan() time.Duration
	// Len returns the number of keys that have a bucket that is not full.
	Len() (int, error)
	// LastSave returns when every change was last durable.
	LastSave() time.Time
	// Evicted returns how many keys were evicted for the bound on keys.
	Evicted() uint64
	// CellCounts returns the counts of CL.THROTTLE's takes.
	CellCounts() bucket.Counts
}

// Bounds of GET /v1/top's query.
const (
	defaultTopWindow = 5 * time.Minute
	defaultTopLimit  = 20
	maxTopLimit      = 1000
)

// cellPolicy names CL.THROTTLE's namespace in GET /v1/top's answer.
const cellPolicy = "cl.throttle"

// topEntry is a key of GET /v1/top's answer.
type topEntry struct {
	Key    string `json:"key"`
	Policy string `json:"policy"` // cellPolicy for CL.THROTTLE
	Cell   bool   `json:"cell"`   // CL.THROTTLE's bucket, not a policy named cellPolicy
	Count  uint64 `json:"count"`  // refusals, an upper bound
	Error  uint64 `json:"error"`  // count overestimates by at most this
}

// apiTop serves GET /v1/top?window=5m&limit=20: the keys refused most over
// the window, by policy.
func (s *Server) apiTop(c *fiber.Ctx) error {
	span := s.lim.TopSpan()
	window := min(defaultTopWindow, span)
	if q := c.Query("window"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d <= 0 || d > span {
			return &inputError{status: fiber.StatusBadRequest, field: "window",
				msg: "window " + strconv.Quote(q) + " is not a duration above 0 and at most " + span.String() + ` ("30s", "5m")`}
		}
		window = d
	}
	limit := defaultTopLimit
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxTopLimit {
			return &inputError{status: fiber.StatusBadRequest, field: "limit",
				msg: "limit " + strconv.Quote(q) + " is not a whole number from 1 to " + strconv.Itoa(maxTopLimit)}
		}
		limit = n
	}
	entries := s.lim.Top(window, limit)
	out := struct {
		WindowSeconds float64    `json:"window_seconds"`
		SpanSeconds   float64    `json:"span_seconds"`
		Keys          []topEntry `json:"keys"`
	}{WindowSeconds: window.Seconds(), SpanSeconds: span.Seconds(), Keys: make([]topEntry, len(entries))}
	for i, e := range entries {
		out.Keys[i] = topEntry{Key: e.Key, Policy: e.Policy, Count: e.Count, Error: e.Error}
		if e.Policy == "" {
			out.Keys[i].Policy, out.Keys[i].Cell = cellPolicy, true
		}
	}
	return sendJSON(c, &out)
}
