package bucket_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

func TestFieldItems(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"policy", bucket.AppendPolicyItem(nil, "d.k_v", 0, 5*bucket.Token, time.Second), `"d.k_v";q=5;w=1`},
		{"policy numbered, no window", bucket.AppendPolicyItem(nil, "p", 2, 5*bucket.Token+bucket.Token/2, 0), `"p-2";q=5`},
		{"policy window rounded up", bucket.AppendPolicyItem(nil, "p", 0, bucket.Token, 1500*time.Millisecond), `"p";q=1;w=2`},
		{"limit", bucket.AppendLimitItem(nil, "p", 0, 3*bucket.Token+1, 200*time.Millisecond), `"p";r=3;t=1`},
		{"limit negative remaining", bucket.AppendLimitItem(nil, "p", 1, -bucket.Token, 0), `"p-1";r=0;t=0`},
		{"escaped name", bucket.AppendItemName(nil, "a\"b\\c\xff", 0), `"a\"b\\c?"`},
		{"empty name", bucket.AppendItemName(nil, "", 0), `"default"`},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, string(tc.got)) })
	}
}
