package main

// A real browser for the console's tests: Debian's chromium, driven through
// the DevTools protocol by chromedp. One browser serves the whole test
// process (started by the first test that needs it, stopped by TestMain);
// each test gets its own tab in a browser context of its own, so cookies
// never leak from one test to another.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var browserState struct {
	once    sync.Once
	ctx     context.Context // the browser's (its first tab's) context
	stop    func()
	dataDir string
	err     error
}

// chromiumPath finds the browser: $DESKHOOK_TEST_CHROMIUM, else chromium
// (Debian's package) or another Chromium-based browser on PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("DESKHOOK_TEST_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH: the console's browser tests need it " +
		"(apt-get install chromium, or make test-deps; or set DESKHOOK_TEST_CHROMIUM to a Chromium binary)")
}

// startBrowser starts the shared browser.
func startBrowser() (context.Context, error) {
	s := &browserState
	s.once.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			s.err = err
			return
		}
		if s.dataDir, err = os.MkdirTemp("", "deskhook-chromium-"); err != nil {
			s.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.UserDataDir(s.dataDir),
			chromedp.Flag("no-sandbox", true), // tests may run as root, in a container
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-quic", true),
			// Without these the browser reaches for the network at its
			// start, which a closed network answers slowly or not at all.
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("window-size", "1280,900"),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(allocCtx)
		s.stop = func() { cancelCtx(); cancelAlloc() }
		// Start it now, within a deadline: a browser that cannot start
		// fails the tests with its reason instead of hanging them. (The
		// first action's context owns the browser: it gets no deadline of
		// its own.)
		started := make(chan error, 1)
		go func() { started <- chromedp.Do(ctx) }()
		select {
		case err = <-started:
		case <-time.After(2 * time.Minute):
			err = errors.New("no answer within 2 minutes")
		}
		if err != nil {
			s.stop()
			s.err = fmt.Errorf("starting %s: %w", path, err)
			return
		}
		s.ctx = ctx
	})
	return s.ctx, s.err
}

// stopBrowser stops the shared browser, if one was started (TestMain).
func stopBrowser() {
	s := &browserState
	if s.stop != nil {
		s.stop()
	}
	if s.dataDir != "" {
		os.RemoveAll(s.dataDir)
	}
}

// tab is one browser tab with cookies of its own.
type tab struct {
	t   testing.TB
	ctx context.Context
}

// tabTimeout bounds everything one tab does, stepTimeout one page load:
// generous, as the tests may run on a loaded two-core machine (builds are
// done before, in TestMain).
const (
	tabTimeout  = 10 * time.Minute
	stepTimeout = 2 * time.Minute
)

// step is the tab's context for one step (a load, a click).
func (b *tab) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, stepTimeout)
}

// newTab opens a tab in a new browser context of the shared browser.
func newTab(t testing.TB) *tab {
	t.Helper()
	bctx, err := startBrowser()
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, tabTimeout)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return &tab{t: t, ctx: ctx}
}

// open navigates to u and returns the HTTP status of the page it lands on
// (after redirects).
func (b *tab) open(u string) int {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		b.t.Fatalf("opening %s: %v", u, err)
	}
	return int(resp.Status)
}

// click clicks the element sel, which submits a form or follows a link,
// and returns the status of the page it leads to.
func (b *tab) click(sel string) int {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("clicking %s on %s: %v\n%s", sel, b.location(), err, b.text("body"))
	}
	return int(resp.Status)
}

// fill types value into the field sel, replacing what it held.
func (b *tab) fill(sel, value string) {
	b.t.Helper()
	found, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); if (e) e.value = ""; return !!e })()`, sel)))
	if err != nil || !found {
		b.t.Fatalf("no field %s on %s (%v):\n%s", sel, b.location(), err, b.text("body"))
	}
	if err := chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.CSS(sel), value)); err != nil {
		b.t.Fatalf("filling %s: %v", sel, err)
	}
}

// choose selects value in the select element sel.
func (b *tab) choose(sel, value string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.CSS(sel), value)); err != nil {
		b.t.Fatalf("choosing %s in %s: %v", value, sel, err)
	}
}

// text is the visible text of the first element sel; the test fails when
// the page has none (no waiting: pages are complete when loaded).
func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[*string](fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); return e ? e.innerText : null })()`, sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	if s == nil {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("no %s on %s:\n%s", sel, loc, body)
	}
	return *s
}

// html is the page's HTML as the browser holds it.
func (b *tab) html() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		b.t.Fatalf("reading the page: %v", err)
	}
	return s
}

func (b *tab) location() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("location: %v", err)
	}
	return s
}

// has reports whether the page has an element matching sel.
func (b *tab) has(sel string) bool {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		b.t.Fatalf("querying %s: %v", sel, err)
	}
	return n > 0
}

// screenshot takes a PNG of the viewport.
func (b *tab) screenshot() []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return png
}
