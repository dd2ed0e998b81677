package respcompat

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInfoTop: refusals of BUCKET.TAKE under a policy and of CL.THROTTLE
// show in INFO's Top section, most first; allowed takes do not.
func TestInfoTop(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	info, err := c.Info(ctx, "top").Result()
	require.NoError(t, err)
	sections, f := infoFields(t, info)
	assert.Equal(t, []string{"Top"}, sections)
	assert.Equal(t, map[string]string{"top_window_seconds": "300", "top_limited_keys": "0"}, f)

	for range 8 { // burst: 5 allowed, 3 refused
		require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "a,b=c", "POLICY", "burst").Err())
	}
	for range 3 { // 1 allowed, 2 refused
		require.NoError(t, c.Do(ctx, "CL.THROTTLE", "bot", "0", "1", "60").Err())
	}
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "fine").Err())

	info, err = c.Info(ctx, "top").Result()
	require.NoError(t, err)
	_, f = infoFields(t, info)
	assert.Equal(t, map[string]string{
		"top_window_seconds": "300",
		"top_limited_keys":   "2",
		"top_limited_0":      `key="a,b=c",policy=burst,count=3,error=0`,
		"top_limited_1":      "key=bot,policy=cl.throttle,count=2,error=0",
	}, f)
}

func TestInfoValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"user42":   "user42",
		"é/ü:x":    "é/ü:x",
		"":         `""`,
		"a b":      `"a b"`,
		"a,b":      `"a,b"`,
		"a=b":      `"a=b"`,
		`a"b`:      `"a\"b"`,
		"a\r\nb":   `"a\r\nb"`,
		"a\x00b":   `"a\x00b"`,
		"a\u200bb": `"a\u200bb"`,
	} {
		assert.Equal(t, want, infoValue(in), "%q", in)
	}
}
