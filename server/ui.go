package server

import (
	"embed"
	"io/fs"
	"path"

	"github.com/gofiber/fiber/v2"
)

// The dashboard: a page and its assets under ui/, embedded in the binary,
// served at GET /ui and GET /ui/{asset}. The page polls the JSON API
// (/v1/policies, /v1/top, /v1/status, /v1/buckets/{key}) with the admin
// token the user typed, kept in the tab's sessionStorage. ui/VENDOR.md says
// where the charting library comes from.
//
//go:embed ui/index.html ui/app.js ui/app.css ui/uPlot.iife.min.js ui/uPlot.min.css ui/uPlot.LICENSE
var uiFiles embed.FS

// uiCSP is the Content-Security-Policy of the dashboard: its own scripts,
// styles and API only; no inline script, no frame, no form elsewhere.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiTypes are the content types of the dashboard's files, by extension.
var uiTypes = map[string]string{
	".html":    "text/html; charset=utf-8",
	".js":      "text/javascript; charset=utf-8",
	".css":     "text/css; charset=utf-8",
	".LICENSE": "text/plain; charset=utf-8",
}

// uiPage serves GET /ui: the dashboard.
func (s *Server) uiPage(c *fiber.Ctx) error { return serveUI(c, "index.html") }

// uiAsset serves GET /ui/{asset}: a file of the dashboard.
func (s *Server) uiAsset(c *fiber.Ctx) error { return serveUI(c, c.Params("asset")) }

func serveUI(c *fiber.Ctx, name string) error {
	b, err := fs.ReadFile(uiFiles, "ui/"+name)
	if err != nil || name == "" || path.Base(name) != name {
		return &inputError{status: fiber.StatusNotFound, msg: "no such file of the dashboard: " + name}
	}
	h := &c.Response().Header
	h.Set(fiber.HeaderContentSecurityPolicy, uiCSP)
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	h.Set(fiber.HeaderCacheControl, "no-cache") // the next binary may bring another page
	h.SetContentType(uiTypes[path.Ext(name)])
	c.Response().SetBodyRaw(b)
	return nil
}
