// Package rlsconfig reads the configuration of envoyproxy/ratelimit, Envoy's
// reference rate limit service, as it is, and matches a request's
// descriptors against it as that service does. It has no gRPC dependency:
// the gRPC front turns the protocol's messages into Entry values, and the
// limiter turns a Match into a bucket.
//
// # The format
//
// A configuration is a directory of YAML files, one per domain:
//
//	domain: messaging
//	descriptors:
//	  - key: message_type
//	    value: marketing
//	    descriptors:
//	      - key: to_number
//	        rate_limit:
//	          unit: day
//	          requests_per_unit: 5
//	  - key: to_number
//	    rate_limit: {unit: day, requests_per_unit: 100, name: per_number}
//
// Every field of envoyproxy/ratelimit's file is accepted: key, value
// (a '*' in it matches any run of characters), rate_limit (unit,
// requests_per_unit, unlimited, name, replaces), descriptors, shadow_mode,
// quota_mode, detailed_metric, value_to_metric, share_threshold and
// metadata. Units are second, minute, hour, day, week, month (30 days) and
// year (365 days), in any case, as there. A key that the format does not
// have is an error, as there. detailed_metric, value_to_metric and metadata
// only shape envoyproxy/ratelimit's statistics; they are checked and kept
// but change no decision.
//
// # Matching
//
// A request descriptor is a list of (key, value) entries. They are followed
// down the nested descriptor lists in order: at each level the entry
// matches key_value exactly if the file has it, else a wildcard value, else
// the key with no value (which matches any value). The descriptor gets the
// rate limit found at the level of its last entry; if the walk stops before
// (no match, or no nested list), or the last level has no rate_limit, the
// descriptor has no limit. So the most specific entry wins, and a
// descriptor must be as deep as the rule it means.
package rlsconfig
