package main

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var update = flag.Bool("update", false, "rewrite the console's screenshots under docs/console")

// screenshotDir holds the README's screenshots of the console.
const screenshotDir = "../../docs/console"

// TestConsoleScreenshots runs `deskhook demo --keep` as a newcomer would,
// signs in to its console with the login link the demo prints, and checks
// that every page shows the demo's data: its two endpoints, demo-crm's
// refusals as failed attempts and dead letters, a ticket's deliveries, an
// event in both formats with its secrets masked. With -update it saves a
// screenshot of each page under docs/console for the README:
//
//	go test ./cmd/deskhook -run TestConsoleScreenshots -update
//
// Without -update it only checks that the committed screenshots are there
// and are PNGs of the size it takes.
func TestConsoleScreenshots(t *testing.T) {
	t.Parallel()
	demo := startDemo(t, "--tickets", "24", "--rate", "20", "--keep")
	// The demo cleans up its database on Ctrl-C.
	t.Cleanup(func() { _ = demo.interrupt(30 * time.Second) })
	link := demo.waitFor(regexp.MustCompile(`login:\s+(http://\S+/ui/login/\S+)`), 3*time.Minute)[1]
	out := &demo.out
	// The demo printed the console's address when it started, too.
	if !regexp.MustCompile(`console: http://127\.0\.0\.1:\d+/ui/ `).MatchString(out.String()) {
		t.Errorf("the demo does not print the console's address at its start:\n%s", out.String())
	}
	base := link[:strings.Index(link, "/ui/")]

	b := newTab(t)
	b.open(link)
	b.waitUntil("", time.Minute, func() (bool, string) { return b.location() == base+"/ui/", b.location() })

	type shot struct {
		name string
		url  string
		// ready says whether the page shows what the screenshot is for.
		ready func() (bool, string)
	}
	shots := []shot{
		{"overview", base + "/ui/", func() (bool, string) {
			m := b.text("main")
			return strings.Contains(m, "Ready") && strings.Contains(m, "demo-receiver") && strings.Contains(m, "demo-crm") &&
				b.has("figure.chart polyline"), m
		}},
		{"endpoints", base + "/ui/endpoints", func() (bool, string) {
			return strings.Contains(b.text("#endpoint-demo-crm .lasterror"), "422") &&
				b.text("#endpoint-demo-crm .deadcount") != "0" && b.text("#endpoint-demo-receiver .pending") == "0", b.text("main")
		}},
		{"deliveries", base + "/ui/deliveries?ticket=4", func() (bool, string) {
			m := b.text("table.deliveries")
			return strings.Contains(m, "demo-crm") && strings.Contains(m, "dead") && strings.Contains(m, "demo-receiver") &&
				strings.Contains(m, "delivered"), m
		}},
		{"event", "", func() (bool, string) {
			m := b.text("main")
			return strings.Contains(m, "faveo-form") && strings.Contains(m, "application/json") &&
				strings.Contains(m, "AAAA-0000-0004") && strings.Contains(m, "Authorization") && strings.Contains(m, "••••••••"), m
		}},
		{"dead-letters", base + "/ui/dead", func() (bool, string) {
			m := b.text("table.dead")
			return strings.Contains(m, "demo-crm") && strings.Contains(m, "HTTP 422"), m
		}},
	}
	for _, s := range shots {
		if s.name == "event" {
			// The ticket's first event, from the deliveries page.
			b.open(base + "/ui/deliveries?ticket=4&type=ticket_created")
			href, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
				`document.querySelector("table.deliveries td.event a").getAttribute("href")`))
			if err != nil {
				t.Fatalf("no event of ticket 4 to open: %v\n%s", err, b.text("main"))
			}
			s.url = base + href
		}
		b.waitUntil(s.url, 2*time.Minute, s.ready)
		page := b.html()
		for _, secret := range []string{"demo-crm-api-key", "ZGVza2hvb2stZGVtby1jcm0tc2VjcmV0IQ"} {
			if strings.Contains(page, secret) {
				t.Errorf("%s shows the secret %q", s.name, secret)
			}
		}
		img := b.screenshot()
		path := filepath.Join(screenshotDir, s.name+".png")
		if *update {
			if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		taken, err := png.DecodeConfig(bytes.NewReader(img))
		if err != nil {
			t.Fatalf("%s: the screenshot is no PNG: %v", s.name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Errorf("%s: no committed screenshot (go test ./cmd/deskhook -run TestConsoleScreenshots -update): %v", s.name, err)
			continue
		}
		committed, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || committed.Width != taken.Width || committed.Height != taken.Height {
			t.Errorf("%s: committed screenshot %s is %dx%d (%v), a new one %dx%d: take them again with -update",
				s.name, path, committed.Width, committed.Height, err, taken.Width, taken.Height)
		}
	}
}
