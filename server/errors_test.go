package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// TestDescribe is the table of handleError: each kind of error, as the
// limiter and Fiber wrap it, and the answer it gets.
func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		field  string
		msg    string
	}{
		{"input error with its status", &inputError{status: 414, field: "key", msg: "key is longer than 4 bytes"},
			414, "key", "key is longer than 4 bytes"},
		{"input error standing for invalid", &inputError{field: "cost", msg: "cost 2 is odd", err: bucket.ErrInvalid},
			400, "cost", "cost 2 is odd"},
		{"invalid, unexplained", fmt.Errorf("limiter: %w", bucket.ErrInvalid), 400, "", "invalid request"},
		{"unknown policy, named", &inputError{field: "policy", msg: `unknown policy "gold"`, err: bucket.ErrUnknownPolicy},
			404, "policy", `unknown policy "gold"`},
		{"unknown policy, unexplained", fmt.Errorf("limiter: %w", bucket.ErrUnknownPolicy), 404, "", "unknown policy"},
		{"closed", fmt.Errorf("storage: take: %w", bucket.ErrClosed), 503, "", "service is shutting down"},
		{"not durable, as the store wraps it", errDiskFull, 503, "",
			"the data file cannot be written: the take was made and its tokens stay spent, but it is not on disk yet"},
		{"not durable, bare", bucket.ErrNotDurable, 503, "",
			"the data file cannot be written: the take was made and its tokens stay spent, but it is not on disk yet"},
		{"no admin token", errNoToken, 401, "", errNoToken.msg},
		{"wrong admin token", errBadToken, 401, "", errBadToken.msg},
		{"fiber's 405", fiber.ErrMethodNotAllowed, 405, "", "method not allowed"},
		{"fiber's message is not echoed", fiber.NewError(404, "Cannot GET /<script>"), 404, "", "not found"},
		{"fiber's 431", fiber.ErrRequestHeaderFieldsTooLarge, 431, "", "request header fields too large"},
		{"internal", errSecret, 500, "", "internal server error"},
		{"internal, wrapped", fmt.Errorf("limiter: %w", errSecret), 500, "", "internal server error"},
	}
	for _, tt := range tests {
		status, field, msg := describe(tt.err)
		assert.Equal(t, tt.status, status, tt.name)
		assert.Equal(t, tt.field, field, tt.name)
		assert.Equal(t, tt.msg, msg, tt.name)
	}
}

// TestLimiterError: the request field that an error of the limiter is
// blamed on, and the errors it passes on as they are.
func TestLimiterError(t *testing.T) {
	t.Parallel()
	invalid := fmt.Errorf("capacity 0 must be positive: %w", bucket.ErrInvalid)
	tests := []struct {
		name         string
		err          error
		policy       string
		invalidField string
		field, msg   string // of the *inputError; "" msg for an error passed on
	}{
		{"unknown policy", fmt.Errorf("%w %q", bucket.ErrUnknownPolicy, "gold"), "gold", "", "policy", `unknown policy "gold"`},
		{"unknown default policy", bucket.ErrUnknownPolicy, "", "", "policy", `unknown policy "default"`},
		{"invalid, field known", invalid, "", "limits", "limits", invalid.Error()},
		{"invalid, field not known", invalid, "", "", "", invalid.Error()},
		{"closed", bucket.ErrClosed, "", "", "", ""},
		{"not durable", errDiskFull, "", "", "", ""},
		{"internal", errSecret, "", "", "", ""},
	}
	for _, tt := range tests {
		got := limiterError(tt.err, tt.policy, tt.invalidField)
		assert.ErrorIs(t, got, tt.err, "%s: the sentinel is kept", tt.name)
		var ie *inputError
		if tt.msg == "" {
			assert.Equal(t, tt.err, got, "%s: passed on as it is", tt.name)
			continue
		}
		require.ErrorAs(t, got, &ie, tt.name)
		assert.Equal(t, tt.field, ie.field, tt.name)
		assert.Equal(t, tt.msg, ie.msg, tt.name)
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"b\s`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "é✓𝄞", "bad\xffutf8", "<&>"} {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		var got, decoded string
		got = string(appendJSONString(nil, s))
		require.NoError(t, json.Unmarshal([]byte(got), &decoded), got)
		assert.Equal(t, strings.ToValidUTF8(s, "\uFFFD"), decoded, "round trip of %q", s)
		var fromStd string
		require.NoError(t, json.Unmarshal(want, &fromStd))
		assert.Equal(t, fromStd, decoded, "same as encoding/json for %q", s)
	}
}
