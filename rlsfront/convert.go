package rlsfront

import (
	"math"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/rlsconfig"
)

// toRequest converts a protocol request to the limiter's.
func toRequest(req *rlsv3.RateLimitRequest) limiter.RLSRequest {
	out := limiter.RLSRequest{
		Domain:      req.GetDomain(),
		Descriptors: make([]limiter.RLSDescriptor, len(req.GetDescriptors())),
		HitsAddend:  uint64(req.GetHitsAddend()),
	}
	for i, d := range req.GetDescriptors() {
		ld := &out.Descriptors[i]
		ld.Entries = make([]rlsconfig.Entry, len(d.GetEntries()))
		for j, e := range d.GetEntries() {
			ld.Entries[j] = rlsconfig.Entry{Key: e.GetKey(), Value: e.GetValue()}
		}
		if l := d.GetLimit(); l != nil {
			// envoy.type.v3.RateLimitUnit numbers its units as the
			// response's RateLimit.Unit does, and so as rlsconfig.Unit.
			ld.Limit = &rlsconfig.RateLimit{RequestsPerUnit: l.GetRequestsPerUnit(), Unit: rlsconfig.Unit(l.GetUnit())}
		}
		if h := d.GetHitsAddend(); h != nil {
			v := h.GetValue()
			ld.HitsAddend = &v
		}
	}
	return out
}

// toResponse renders the limiter's result.
func toResponse(res limiter.RLSResult) *rlsv3.RateLimitResponse {
	resp := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(res.Statuses)),
	}
	if res.Over {
		resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
	}
	for i, st := range res.Statuses {
		ds := &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
		switch {
		case st.Unlimited:
			ds.LimitRemaining = math.MaxUint32 // as envoyproxy/ratelimit answers
		case st.Rule != nil:
			if st.Over {
				ds.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			}
			ds.CurrentLimit = &rlsv3.RateLimitResponse_RateLimit{
				Name:            st.Rule.Name,
				RequestsPerUnit: st.Rule.RequestsPerUnit,
				Unit:            rlsv3.RateLimitResponse_RateLimit_Unit(st.Rule.Unit),
			}
			ds.LimitRemaining = uint32(min(max(st.Remaining.Whole(), 0), math.MaxUint32))
			ds.DurationUntilReset = durationpb.New(st.ResetAfter)
		}
		resp.Statuses[i] = ds
	}
	resp.ResponseHeadersToAdd = headers(res)
	return resp
}

// headers returns the draft-10 RateLimit-Policy and RateLimit fields, one
// item per descriptor that has a bucket and is enforced (not shadow mode),
// named after its rule (its name, else its path in the configuration, as
// "message_type_marketing.to_number"), with "-i" when there are several;
// and Retry-After, in seconds rounded up, when the request is over a
// limit that time can lift. None when no descriptor has a bucket.
func headers(res limiter.RLSResult) []*corev3.HeaderValue {
	n := 0
	for _, st := range res.Statuses {
		if enforced(st) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	var policy, limit []byte
	idx := 0
	var retry time.Duration
	for _, st := range res.Statuses {
		if !enforced(st) {
			continue
		}
		i := 0
		if n > 1 {
			idx++
			i = idx
		}
		if len(policy) > 0 {
			policy = append(policy, ", "...)
			limit = append(limit, ", "...)
		}
		name := st.Rule.Name
		if name == "" {
			name = st.Rule.Path
		}
		policy = bucket.AppendPolicyItem(policy, name, i, st.Limit.Capacity, st.Limit.Window())
		limit = bucket.AppendLimitItem(limit, name, i, st.Remaining, st.ResetAfter)
		if st.Over && st.RetryAfter != bucket.Never {
			retry = max(retry, st.RetryAfter)
		}
	}
	hs := []*corev3.HeaderValue{
		{Key: "RateLimit-Policy", Value: string(policy)},
		{Key: "RateLimit", Value: string(limit)},
	}
	if res.Over && retry > 0 {
		hs = append(hs, &corev3.HeaderValue{Key: "Retry-After", Value: strconv.FormatInt(bucket.Ceil(retry, time.Second), 10)})
	}
	return hs
}

// enforced reports whether st is a bucket's status whose rule is enforced.
func enforced(st limiter.RLSStatus) bool {
	return st.Rule != nil && !st.Unlimited && !st.Rule.ShadowMode
}
