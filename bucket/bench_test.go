package bucket_test

import (
	"testing"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// BenchmarkTake is the hot path of every request: one take under one limit,
// allowed and denied in turn (the client asks for 1 token every 7 ms, a
// bucket of 100/s earns one every 10 ms).
func BenchmarkTake(b *testing.B) {
	l := bucket.Limit{Capacity: 100 * tok, Rate: bucket.PerSecond(100)}
	s, now := bucket.Full(l, t0), t0
	var allowed int
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(7 * time.Millisecond)
		var d bucket.Decision
		s, d = s.Take(l, now, tok)
		if d.Allowed {
			allowed++
		}
	}
	if allowed == 0 {
		b.Fatal("nothing allowed")
	}
}

// BenchmarkPolicyTake is a take under a policy of a burst and a quota.
func BenchmarkPolicyTake(b *testing.B) {
	p := bucket.Policy{Name: "api", Limits: []bucket.Limit{
		{Capacity: 100 * tok, Rate: bucket.PerSecond(100)},
		{Capacity: 10_000 * tok, Rate: bucket.Rate{Tokens: 100_000 * tok, Per: time.Hour}},
	}}
	s := []bucket.State{bucket.Full(p.Limits[0], t0), bucket.Full(p.Limits[1], t0)}
	each := make([]bucket.Decision, len(p.Limits))
	now := t0
	var allowed int
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(7 * time.Millisecond)
		if p.Take(s, now, tok, each).Allowed {
			allowed++
		}
	}
	if allowed == 0 {
		b.Fatal("nothing allowed")
	}
}

// BenchmarkParseTokens parses a cost as a front reads it from a request.
func BenchmarkParseTokens(b *testing.B) {
	for _, in := range []string{"1", "0.25", "999999999999.999999"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bucket.ParseTokens(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
