package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// adminAuth checks the bearer token of the admin routes.
//
// The token is compared in constant time, and as SHA-256 digests so that
// the comparison takes the same time whatever the lengths: a client that
// times the answers learns nothing of the token, not even its length. Only
// the digest is kept.
type adminAuth struct {
	enabled bool
	want    [sha256.Size]byte // digest of Config.AdminToken
}

func newAdminAuth(token string) adminAuth {
	return adminAuth{enabled: token != "", want: sha256.Sum256([]byte(token))}
}

// authError is a request refused for its credentials: 401 with a
// WWW-Authenticate challenge (RFC 6750 §3).
type authError struct {
	msg       string
	challenge string
}

func (e *authError) Error() string { return e.msg }

var (
	errNoToken = &authError{msg: "this route needs the admin token: Authorization: Bearer <token>",
		challenge: `Bearer realm="bucketd"`}
	errBadToken = &authError{msg: "the admin token is wrong",
		challenge: `Bearer realm="bucketd", error="invalid_token"`}
)

// check returns nil when admin routes are open or the request carries the
// token, and an *authError otherwise.
func (a *adminAuth) check(c *fiber.Ctx) error {
	if !a.enabled {
		return nil
	}
	scheme, token, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	// The scheme is case-insensitive (RFC 9110 §11.1).
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errNoToken
	}
	got := sha256.Sum256([]byte(strings.TrimLeft(token, " ")))
	if subtle.ConstantTimeCompare(got[:], a.want[:]) != 1 {
		return errBadToken
	}
	return nil
}
