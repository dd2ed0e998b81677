package server

import (
	"bufio"
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// defaultPage and maxPage bound the keys one GET /v1/buckets returns.
const (
	defaultPage = 100
	maxPage     = 1000
)

// apiPeek serves GET /v1/buckets/{key}: a take of 0.
func (s *Server) apiPeek(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	res, err := s.lim.Take(key, policy, 0)
	if err != nil {
		return limiterError(err, policy, "")
	}
	return sendJSON(c, newDecision(key, 0, &res))
}

// deleted answers a DELETE.
type deleted struct {
	Deleted bool `json:"deleted"` // whether there was something to delete
}

// apiReset serves DELETE /v1/buckets/{key}: the bucket under the policy,
// or every bucket of the key without one, is full again.
func (s *Server) apiReset(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	ok, err := s.lim.Reset(key, policy)
	if err != nil {
		return limiterError(err, policy, "")
	}
	return sendJSON(c, deleted{ok})
}

// apiSetTokens serves PUT /v1/buckets/{key}/tokens: the bucket holds the
// given tokens now (clamped to its capacity).
func (s *Server) apiSetTokens(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	var req struct {
		Tokens amount `json:"tokens"`
	}
	if err := decode(c.Request().Body(), &req, ""); err != nil {
		return err
	}
	if !req.Tokens.set {
		return &inputError{status: fiber.StatusBadRequest, field: "tokens", msg: "tokens is required"}
	}
	tokens, err := req.Tokens.parse("tokens")
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	res, err := s.lim.Set(key, policy, tokens)
	if err != nil {
		return limiterError(err, policy, "") // tokens were checked: as for a take
	}
	return sendJSON(c, newDecision(key, 0, &res))
}

// apiKeys serves GET /v1/buckets: a page of the keys that have a bucket.
func (s *Server) apiKeys(c *fiber.Ctx) error {
	limit := defaultPage
	if c.Context().QueryArgs().Has("limit") {
		n, err := strconv.Atoi(c.Query("limit"))
		if err != nil || n < 1 || n > maxPage {
			return &inputError{status: fiber.StatusBadRequest, field: "limit",
				msg: "limit " + strconv.Quote(c.Query("limit")) + " is not a whole number from 1 to " + strconv.Itoa(maxPage)}
		}
		limit = n
	}
	keys, next, err := s.lim.Keys(c.Query("prefix"), c.Query("cursor"), limit)
	if err != nil {
		return limiterError(err, "", "")
	}
	if keys == nil {
		keys = []string{}
	}
	return sendJSON(c, struct {
		Keys       []string `json:"keys"`
		NextCursor string   `json:"next_cursor"`
	}{keys, next})
}

// apiBackup serves GET /v1/backup: a consistent copy of the state as one
// data file, made by a checkpoint and streamed from a read transaction.
// Starting bucketd on the file restores the state. The checkpoint is made
// before the answer starts, so that its failure is a status, not a cut
// body.
func (s *Server) apiBackup(c *fiber.Ctx) error {
	if err := s.lim.CanBackup(); err != nil { // before a status is sent
		return err
	}
	if err := s.lim.Save(); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/octet-stream")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="bucketd.db"`)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		if err := s.lim.Backup(w); err != nil {
			// The status is sent: all that is left is to cut the body
			// short, which the client sees as a file that does not open.
			s.log.Error("backup failed while it was sent", "err", err)
		}
	})
	return nil
}
