package server

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPIDoc is the OpenAPI 3 description of every route, served at
// /v1/openapi.json. TestOpenAPIMatchesRoutes keeps it in step with the
// routes the server registers.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI serves GET /v1/openapi.json.
func (s *Server) openAPI(c *fiber.Ctx) error {
	resp := c.Response()
	resp.SetStatusCode(fiber.StatusOK)
	resp.Header.SetContentType(mimeJSON)
	resp.SetBodyRaw(openAPIDoc) // never written to: fasthttp only reads a raw body
	return nil
}
