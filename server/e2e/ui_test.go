package e2e_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The dashboard (/ui) in a real browser: headless Chromium, driven by
// chromedp, against the real binary. Without Chromium the tests skip, and
// fail under CI=true (.ci/run installs Debian's chromium).

// dashboardPolicies are the policies of the dashboard tests: free refuses
// the sixth take of a day, paid allows 100, trial is a shadow policy.
const dashboardPolicies = `default: free
policies:
  free: {capacity: 5, rate: 1/d}
  paid: {capacity: 100, rate: 100/h}
  trial: {capacity: 1, rate: 1/d, shadow: true}
`

// chromiumPath returns the browser to drive, or skips (fails in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium); CI needs it")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// browser returns a chromedp context on a new headless Chromium with a
// fresh profile, and the console messages it has logged so far. The
// browser is stopped when the test ends.
func browser(t *testing.T) (context.Context, func() []chromedp.ConsoleMessage) {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1500),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	var mu sync.Mutex
	var msgs []chromedp.ConsoleMessage
	console := chromedp.Console(ctx) // starts the browser and subscribes
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ctx, func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]chromedp.ConsoleMessage(nil), msgs...)
	}
}

// run runs a on ctx, bounded by 30 s, and fails the test on an error.
func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err, what)
	return v
}

// void drops the value of a.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// takes makes n takes of key under policy ("" for the default) over HTTP.
func takes(t *testing.T, httpAddr, key, policy string, n int) {
	t.Helper()
	url := "http://" + httpAddr + "/" + key
	if policy != "" {
		url += "?policy=" + policy
	}
	for range n {
		resp, err := http.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
	}
}

// polls returns how many polls the page has finished.
func polls(t *testing.T, ctx context.Context) int {
	t.Helper()
	s := run(t, ctx, "read polls", chromedp.Evaluate[string](`document.documentElement.dataset.polls || "0"`))
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// waitPolls waits until the page has finished a poll after the n-th.
func waitPolls(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	run(t, ctx, "wait for poll "+strconv.Itoa(n+1), chromedp.Poll[bool](
		`Number(document.documentElement.dataset.polls || 0) > `+strconv.Itoa(n)))
}

// policyRow is a row of the page's policies table.
type policyRow struct {
	Name    string `json:"name"`
	Allowed string `json:"allowed"`
	Limited string `json:"limited"`
}

// topRow is a row of the page's most limited keys.
type topRow struct {
	Key    string `json:"key"`
	Policy string `json:"policy"`
	Count  string `json:"count"`
	Error  string `json:"error"`
}

// dashboard is what the page shows.
type dashboard struct {
	Policies []policyRow       `json:"policies"`
	Top      []topRow          `json:"top"`
	Status   map[string]string `json:"status"`
	Legend   []string          `json:"legend"`
	Canvases int               `json:"canvases"`
	Conn     string            `json:"conn"`
}

// readDashboard reads the rendered DOM.
const readDashboard = `(() => {
  const txt = (el) => el ? el.textContent.trim() : "";
  const first = (el) => el ? (el.firstChild ? el.firstChild.textContent : "") : "";
  return {
    policies: [...document.querySelectorAll("#policies tbody tr")].map((tr) => ({
      name: first(tr.querySelector("th")), allowed: txt(tr.cells[1]), limited: txt(tr.cells[2]) })),
    top: [...document.querySelectorAll("#top tbody tr")].map((tr) => ({
      key: txt(tr.cells[0]), policy: first(tr.cells[1]), count: txt(tr.cells[2]), error: txt(tr.cells[3]) })),
    status: Object.fromEntries([...document.querySelectorAll("#status dd")].map((dd) => [dd.id, txt(dd)])),
    legend: [...document.querySelectorAll("#chart-limited .u-legend .u-series:not(:first-child) .u-label")].map(txt),
    canvases: document.querySelectorAll("#chart-allowed .uplot canvas, #chart-limited .uplot canvas").length,
    conn: txt(document.getElementById("conn")),
  };
})()`

// screenshot saves a PNG of the whole page to $ARTIFACTS_DIR (or the
// test's temporary directory) and logs its path. With
// BUCKETD_UPDATE_SCREENSHOT=1, the one named dashboard.png is also written
// to docs/dashboard.png, the README's picture.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	if os.Getenv("BUCKETD_UPDATE_SCREENSHOT") == "1" && name == "dashboard.png" {
		root, err := moduleRoot()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(root, "docs", "dashboard.png"), png, 0o644))
	}
}

// assertNoConsoleErrors checks that the page logged no error: no
// exception, no failed load, no blocked script or style (the CSP).
func assertNoConsoleErrors(t *testing.T, msgs []chromedp.ConsoleMessage, allowed ...string) {
	t.Helper()
	for _, m := range msgs {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		ok := false
		for _, a := range allowed {
			if m.URL == a {
				ok = true
			}
		}
		if !ok {
			t.Errorf("console: %s (%s:%d)", m, m.URL, m.Line)
		}
	}
}

// dashboardTraffic makes the takes the dashboard tests look at: free
// refuses 3 of alice's 8, trial (shadow) would refuse 2 of carol's 3,
// CL.THROTTLE refuses 2 of bot's 3, paid allows bob's 2.
func dashboardTraffic(t *testing.T, p *proc) {
	t.Helper()
	takes(t, p.httpAddr, "alice", "", 8)
	takes(t, p.httpAddr, "bob", "paid", 2)
	takes(t, p.httpAddr, "carol", "trial", 3)
	c := redis.NewClient(&redis.Options{Addr: p.respAddr})
	defer c.Close()
	for range 3 {
		require.NoError(t, c.Do(context.Background(), "CL.THROTTLE", "bot", "0", "1", "3600").Err())
	}
}

func TestDashboard(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "policies.yaml", dashboardPolicies)
	p := startBinaryIn(t, dir, nil, "--config", cfg, "--data", filepath.Join(dir, "bucketd.db"))
	dashboardTraffic(t, p)
	ctx, console := browser(t)

	run(t, ctx, "open /ui", chromedp.Navigate("http://"+p.httpAddr+"/ui"))
	run(t, ctx, "wait for the top keys", chromedp.WaitVisible(chromedp.CSS("#top tbody tr")))
	// Traffic between polls, so that the charts have rates to draw.
	for i := range 3 {
		n := polls(t, ctx)
		takes(t, p.httpAddr, "alice", "", 5*(i+1))
		takes(t, p.httpAddr, "bob", "paid", 3)
		waitPolls(t, ctx, n)
	}
	waitPolls(t, ctx, polls(t, ctx)) // a poll after the last takes: the counts are final

	d := run(t, ctx, "read the page", chromedp.Evaluate[dashboard](readDashboard))
	assert.Equal(t, []policyRow{
		{"free", "5", "33"}, // 3 + 5 + 10 + 15
		{"paid", "11", "0"},
		{"trial", "1", "2"},
		{"cl.throttle", "1", "2"},
	}, d.Policies)
	require.NotEmpty(t, d.Top)
	assert.Equal(t, []topRow{
		{"alice", "free", "33", "0"},
		{"bot", "cl.throttle", "2", "0"},
		{"carol", "trial", "2", "0"},
	}, d.Top)
	assert.Equal(t, "4", d.Status["st-buckets"], "alice, bob, carol and bot")
	assert.Equal(t, "healthy", d.Status["st-persist"])
	assert.NotEqual(t, "–", d.Status["st-heap"])
	assert.Equal(t, 2, d.Canvases, "both charts are drawn")
	assert.Equal(t, []string{"free", "paid", "trial", "cl.throttle"}, d.Legend)
	assert.Contains(t, d.Conn, "Live")

	// The lookup box peeks alice under every policy.
	run(t, ctx, "look up alice", chromedp.Steps(
		chromedp.SendKeys(chromedp.ID("lookup-key"), "alice"),
		chromedp.Click(chromedp.CSS("#lookup-form button")),
		chromedp.WaitVisible(chromedp.CSS("#lookup tbody tr")),
	))
	rows := run(t, ctx, "read the lookup", chromedp.Evaluate[[][]string](
		`[...document.querySelectorAll("#lookup tbody tr")].map((tr) => [tr.cells[0].firstChild.textContent, tr.cells[1].textContent, tr.cells[2].textContent])`))
	assert.Equal(t, [][]string{{"free", "0", "5"}, {"paid", "100", "100"}, {"trial", "1", "1"}}, rows)

	// Accessible markup: every control has a label, headings go h1 then
	// h2, each table a caption and column headers (uPlot's legends aside),
	// each chart a name.
	unlabelled := run(t, ctx, "check the markup", chromedp.Evaluate[[]string](`[
	  ...[...document.querySelectorAll("input, select, button")].filter((el) =>
	      el.tagName === "BUTTON" ? !el.textContent.trim() : el.labels.length === 0).map((el) => "control " + el.id),
	  ...[...document.querySelectorAll("table:not(.u-legend)")].filter((t) => !t.caption || !t.tHead).map((t) => "table " + t.id),
	  ...[...document.querySelectorAll("[role=img]")].filter((el) => {
	      const by = document.getElementById(el.getAttribute("aria-labelledby"));
	      return !by || !by.textContent.trim(); }).map((el) => "chart " + el.id),
	  ...(document.querySelectorAll("h1").length === 1 ? [] : ["one h1"]),
	  ...(document.querySelector("h3, h4, h5, h6") ? ["h2 at most"] : []),
	  ...(document.documentElement.lang ? [] : ["html lang"]),
	]`))
	assert.Empty(t, unlabelled)

	screenshot(t, ctx, "dashboard.png")
	assertNoConsoleErrors(t, console())
}

// TestDashboardAdminToken: with --admin-token, the page shows what is open
// (the policies), asks for the token, says when it is wrong, and keeps the
// right one in sessionStorage only.
func TestDashboardAdminToken(t *testing.T) {
	const token = "s3cret-t0ken"
	dir := t.TempDir()
	cfg := writeFile(t, dir, "policies.yaml", dashboardPolicies)
	p := startBinaryIn(t, dir, nil, "--config", cfg, "--data", filepath.Join(dir, "bucketd.db"), "--admin-token", token)
	dashboardTraffic(t, p)
	ctx, console := browser(t)
	base := "http://" + p.httpAddr

	run(t, ctx, "open /ui", chromedp.Navigate(base+"/ui"))
	run(t, ctx, "wait for the token form", chromedp.WaitVisible(chromedp.ID("token")))
	d := run(t, ctx, "read the page", chromedp.Evaluate[dashboard](readDashboard))
	assert.Len(t, d.Policies, 3, "the policies are open: shown without the token")
	assert.Empty(t, d.Top, "the top keys need the token")
	assert.Contains(t, d.Conn, "admin token is needed")

	// A click, as a user does: chromedp.Submit calls form.submit(), which
	// skips the page's submit handler.
	run(t, ctx, "a wrong token", chromedp.Steps(
		chromedp.SendKeys(chromedp.ID("token"), "wrong"),
		chromedp.Click(chromedp.CSS("#token-form button")),
		void(chromedp.Poll[bool](`document.getElementById("token-error").textContent.includes("refused")`)),
	))
	run(t, ctx, "the right token", chromedp.Steps(
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("#token-form button")),
		chromedp.WaitVisible(chromedp.CSS("#top tbody tr")),
		chromedp.WaitNotVisible(chromedp.ID("token-section")),
	))
	d = run(t, ctx, "read the page", chromedp.Evaluate[dashboard](readDashboard))
	require.NotEmpty(t, d.Top)
	assert.Equal(t, topRow{"alice", "free", "3", "0"}, d.Top[0])
	assert.Equal(t, "4", d.Status["st-buckets"])

	stored := run(t, ctx, "read the storage", chromedp.Evaluate[[]any](
		`[sessionStorage.getItem("bucketd-admin-token"), localStorage.length, document.cookie]`))
	assert.Equal(t, []any{token, float64(0), ""}, stored, "the token is in sessionStorage only")

	// One loop of polls, however many times a poll is asked for while one
	// is in flight (the token form, the window select): after four asks,
	// the poll in flight and one more run at once, then one a second, so
	// four polls take at least two seconds. Loops that multiplied with each
	// ask would take no time.
	elapsed := run(t, ctx, "time three polls", chromedp.Evaluate[float64](`new Promise((resolve) => {
	  const sel = document.getElementById("top-window");
	  for (const v of ["1m", "5m", "1m", "5m"]) { sel.value = v; sel.dispatchEvent(new Event("change")); }
	  const n0 = Number(document.documentElement.dataset.polls), t0 = performance.now();
	  const check = () => Number(document.documentElement.dataset.polls) >= n0 + 4 ? resolve(performance.now() - t0) : setTimeout(check, 20);
	  check();
	})`, chromedp.EvalAwaitPromise))
	assert.GreaterOrEqual(t, elapsed, 1900.0, "ms for 4 polls, one of them asked for while another ran")

	screenshot(t, ctx, "dashboard-token.png")
	// The wrong token's 401s are the only errors the page caused.
	var other []chromedp.ConsoleMessage
	for _, m := range console() {
		if !(m.Source == "network" && m.Type == chromedp.ConsoleError) {
			other = append(other, m)
		}
	}
	assertNoConsoleErrors(t, other)
}
