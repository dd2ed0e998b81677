package server

import (
	"errors"
	"strconv"
	"strings"

	"github.com/bucketd/bucketd/bucket"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/gofiber/fiber/v2"
)

// apiPolicies serves GET /v1/policies.
func (s *Server) apiPolicies(c *fiber.Ctx) error {
	return sendJSON(c, s.policyList())
}

// policyJSON is a policy in an answer.
type policyJSON struct {
	Name    string      `json:"name"`
	Default bool        `json:"default"`
	Shadow  bool        `json:"shadow"`
	Limits  []limitJSON `json:"limits"`
	Counts  struct {
		Allowed uint64 `json:"allowed"`
		Denied  uint64 `json:"denied"`
	} `json:"counts"`
}

// limitJSON is a limit in an answer.
type limitJSON struct {
	Capacity tokens `json:"capacity"`
	Rate     string `json:"rate"` // as bucket.ParseRate reads it: "10/s", "1/3s"
}

func limitsJSON(ls []bucket.Limit) []limitJSON {
	out := make([]limitJSON, len(ls))
	for i, l := range ls {
		out[i] = limitJSON{tokens(l.Capacity), l.Rate.String()}
	}
	return out
}

func (s *Server) policyList() any {
	infos := s.lim.Policies()
	out := struct {
		Policies []policyJSON `json:"policies"`
	}{make([]policyJSON, len(infos))}
	for i, p := range infos {
		j := &out.Policies[i]
		j.Name, j.Default, j.Shadow, j.Limits = p.Name, p.Default, p.Shadow, limitsJSON(p.Limits)
		j.Counts.Allowed, j.Counts.Denied = p.Allowed, p.Denied
	}
	return &out
}

// overrideJSON is an override in an answer.
type overrideJSON struct {
	Key    string      `json:"key"`
	Policy string      `json:"policy"`
	Limits []limitJSON `json:"limits"`
}

func newOverrideJSON(o bucket.Override) overrideJSON {
	if o.Policy == "" {
		o.Policy = bucket.DefaultPolicy
	}
	return overrideJSON{o.Key, o.Policy, limitsJSON(o.Limits)}
}

// apiOverrides serves GET /v1/overrides.
func (s *Server) apiOverrides(c *fiber.Ctx) error {
	list := s.lim.Overrides()
	out := struct {
		Overrides []overrideJSON `json:"overrides"`
	}{make([]overrideJSON, len(list))}
	for i, o := range list {
		out.Overrides[i] = newOverrideJSON(o)
	}
	return sendJSON(c, &out)
}

// apiOverride serves GET /v1/overrides/{key}.
func (s *Server) apiOverride(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	o, ok := s.lim.Override(key, policy)
	if !ok {
		return errNoOverride(key, policy)
	}
	return sendJSON(c, newOverrideJSON(o))
}

func errNoOverride(key, policy string) error {
	if policy == "" {
		policy = bucket.DefaultPolicy
	}
	return &inputError{status: fiber.StatusNotFound, field: "key",
		msg: "key " + strconv.Quote(key) + " has no override under policy " + strconv.Quote(policy)}
}

// limitRequest is a limit in a request body.
type limitRequest struct {
	Capacity amount `json:"capacity"`
	Rate     string `json:"rate"`
}

// apiSetOverride serves PUT /v1/overrides/{key}: the key gets its own
// limits under the policy, replacing any it had.
func (s *Server) apiSetOverride(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	var req struct {
		Limits []jsontext.Value `json:"limits"`
	}
	if err := decode(c.Request().Body(), &req, ""); err != nil {
		return err
	}
	if len(req.Limits) == 0 || len(req.Limits) > bucket.MaxLimits {
		return &inputError{status: fiber.StatusBadRequest, field: "limits",
			msg: "limits must hold from 1 to " + strconv.Itoa(bucket.MaxLimits) + " limits, not " + strconv.Itoa(len(req.Limits))}
	}
	limits := make([]bucket.Limit, len(req.Limits))
	for i, raw := range req.Limits {
		at := "limits[" + strconv.Itoa(i) + "]"
		if limits[i], err = parseLimit(raw, at); err != nil {
			return err
		}
	}
	policy := c.Query("policy")
	o := bucket.Override{Key: strings.Clone(key), Policy: strings.Clone(policy), Limits: limits}
	if err := s.lim.SetOverride(o); err != nil {
		return limiterError(err, policy, "limits")
	}
	if stored, ok := s.lim.Override(key, policy); ok { // as the limiter names its policy
		o = stored
	}
	return sendJSON(c, newOverrideJSON(o))
}

// parseLimit decodes and checks one limit of a request body; at is its
// place ("limits[0]"), to name the field at fault.
func parseLimit(raw []byte, at string) (bucket.Limit, error) {
	var req limitRequest
	if err := decode(raw, &req, at); err != nil {
		return bucket.Limit{}, err
	}
	if !req.Capacity.set {
		return bucket.Limit{}, &inputError{status: fiber.StatusBadRequest, field: at + ".capacity", msg: "capacity is required"}
	}
	capacity, err := req.Capacity.parse(at + ".capacity")
	if err != nil {
		return bucket.Limit{}, err
	}
	if capacity <= 0 {
		return bucket.Limit{}, &inputError{field: at + ".capacity", err: bucket.ErrInvalid,
			msg: "capacity " + req.Capacity.text + " must be more than zero"}
	}
	if req.Rate == "" {
		return bucket.Limit{}, &inputError{status: fiber.StatusBadRequest, field: at + ".rate",
			msg: "rate is required: TOKENS/PERIOD, e.g. 10/s or 1/3s"}
	}
	rate, err := bucket.ParseRate(req.Rate)
	if err != nil {
		return bucket.Limit{}, &inputError{field: at + ".rate", msg: err.Error(), err: err}
	}
	l := bucket.Limit{Capacity: capacity, Rate: rate}
	if err := l.Validate(); err != nil {
		return bucket.Limit{}, &inputError{field: at, msg: err.Error(), err: err}
	}
	return l, nil
}

// apiDeleteOverride serves DELETE /v1/overrides/{key}.
func (s *Server) apiDeleteOverride(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	ok, err := s.lim.DeleteOverride(key, policy)
	if err != nil {
		return limiterError(err, policy, "")
	}
	return sendJSON(c, deleted{ok})
}

// apiReload serves POST /v1/reload: Config.Reload, then the policies now
// in force.
func (s *Server) apiReload(c *fiber.Ctx) error {
	if s.reload == nil {
		return &inputError{status: fiber.StatusNotImplemented, msg: "reload is not available"}
	}
	if err := s.reload(); err != nil {
		if errors.Is(err, bucket.ErrClosed) {
			return err
		}
		// Most likely a bad config file: the administrator's to fix, so
		// the message is shown. The old policies are still in force.
		return &inputError{status: fiber.StatusUnprocessableEntity, msg: "reload failed: " + err.Error()}
	}
	return sendJSON(c, s.policyList())
}
