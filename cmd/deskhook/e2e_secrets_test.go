package main

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

// TestLogsHoldNoSecrets runs setup, check, run (with failing endpoints, a
// receiver that echoes credentials back, and a reload that adds new
// secrets), status, endpoints, dlq and teardown with log.level debug, in
// both log formats, and greps every line they print for every secret: the
// DSN password, endpoint secrets, header values, a URL password and the
// app key.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	const (
		dbPassword = "dbPW-7Hq:x/y@z#1"
		header     = "Bearer hdr-tok-5f2c9a71"
		urlPass    = "url-pw-44719"
		header2    = "Token reload-hdr-88e1b3"
	)
	appKeyRaw := base64.StdEncoding.EncodeToString([]byte("e2e-app-key-0123456789abcdefghij"))
	secretRaw := base64.StdEncoding.EncodeToString([]byte("e2e-endpoint-secret-32-bytes!!!!"))
	oldRaw := base64.StdEncoding.EncodeToString([]byte("e2e-rotated-out-secret-24b"))
	secret2Raw := base64.StdEncoding.EncodeToString([]byte("e2e-reloaded-endpoint-secret-32b"))
	secrets := []string{dbPassword, url.QueryEscape(dbPassword), url.PathEscape(dbPassword), header, "hdr-tok-5f2c9a71",
		urlPass, appKeyRaw, secretRaw, oldRaw, secret2Raw, header2, "reload-hdr-88e1b3"}

	u, err := url.Parse(e.db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), dbPassword)
	e.section("source")["dsn"] = u.String() // trust auth: accepted, ignored
	e.cfg["faveo"] = map[string]any{"app_key": "base64:" + appKeyRaw}
	e.rcv.SetHook(func(r *testenv.Request) (testenv.Reply, bool) {
		if r.Path != "/echo" {
			return testenv.Reply{}, false
		}
		// A receiver that quotes the credentials it got in its error.
		return testenv.Reply{Status: 401, Body: "bad credentials: " + r.Header.Get("Authorization") + " / " +
			r.Header.Get("Webhook-Signature")}, true
	})
	short := map[string]any{"schedule": []string{"0s", "10ms"}}
	withSecrets := func(name, u string) map[string]any {
		return map[string]any{"name": name, "url": u, "events": allEvents(), "retry": short,
			"secret":  "whsec_" + secretRaw + " whsec_" + oldRaw,
			"headers": map[string]string{"Authorization": header, "X-Api-Key": header}}
	}
	closed := freePort(t)
	ok := withSecrets("rcv", e.rcv.URL+"/hooks")
	ok["retry"] = e.endpoint(0)["retry"]
	e.cfg["endpoints"] = []any{
		ok,
		withSecrets("refused", "http://deskhook:"+urlPass+"@"+closed+"/hooks"),
		withSecrets("echo", e.rcv.URL+"/echo"),
	}

	var out strings.Builder
	record := func(what string, res cmdResult) {
		out.WriteString("=== " + what + "\n" + res.stdout + res.stderr)
	}
	ctx := context.Background()
	seed := int64(30)
	for _, format := range []string{"text", "json"} {
		e.section("log")["format"] = format
		e.section("log")["level"] = "debug"
		e.cfg["endpoints"] = e.cfg["endpoints"].([]any)[:3]
		e.writeConfig()
		if format == "text" {
			record("setup", e.must("setup"))
		} else { // the store has streamed, and teardown dropped its slot
			record("setup --accept-gap", e.must("setup", "--accept-gap"))
		}
		record("check", e.must("check"))
		d := e.start()
		seed++
		base := len(deliveredIDs(e.rcv.Requests()))
		load := e.load(ctx, testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: seed})
		e.waitDelivered(base+load.TotalEvents(), 30*time.Second)
		waitStatus(t, e, func(st *daemon.Status) bool {
			dead := map[string]int64{}
			for _, ep := range st.Endpoints {
				dead[ep.Name] = ep.DeadLetters
			}
			return dead["refused"] >= int64(load.TotalEvents()) && dead["echo"] >= int64(load.TotalEvents())
		})
		// A reload brings new secrets; they are scrubbed too.
		e.cfg["endpoints"] = append(e.cfg["endpoints"].([]any), map[string]any{
			"name": "reloaded", "url": e.rcv.URL + "/echo", "retry": short,
			"secret": "whsec_" + secret2Raw, "headers": map[string]string{"Authorization": header2},
		})
		e.writeConfig()
		d.signal(syscall.SIGHUP)
		waitStatus(t, e, func(st *daemon.Status) bool { return len(st.Endpoints) == 4 })
		seed++
		more := e.load(ctx, testenv.LoadConfig{Tickets: 1, Seed: seed})
		waitStatus(t, e, func(st *daemon.Status) bool {
			return st.Endpoints[3].DeadLetters >= int64(more.Events["ticket_created"])
		})
		record("status", e.must("status"))
		record("status --json", e.must("status", "--json"))
		record("endpoints list", e.must("endpoints", "list"))
		dead := dlqJSON(t, e.must("dlq", "list", "--json", "--endpoint", "echo"))
		record("dlq list", e.must("dlq", "list"))
		record("dlq show", e.must("dlq", "show", "--endpoint", "echo", dead[0].ID))
		record("dlq show --json", e.must("dlq", "show", "--json", "--endpoint", "echo", dead[0].ID))
		d.stop()
		record("run ("+format+")", cmdResult{stdout: d.stdout.String(), stderr: d.stderr.String()})
		record("status offline", e.must("status"))
		record("dlq show offline", e.must("dlq", "show", "--endpoint", "reloaded", dlqJSON(t, e.must("dlq", "list", "--json", "--endpoint", "reloaded"))[0].ID))
		record("teardown", e.must("teardown"))

		logs := d.stderr.String()
		for _, want := range []string{"DEBUG", "dead letter", "connection refused", "endpoints reloaded"} {
			if !strings.Contains(logs, want) {
				t.Errorf("%s logs lack %q: the test would not see secrets where they could leak", format, want)
			}
		}
	}
	// The secrets were in play: the receiver got them, the echo answered them.
	var sawHeader, sawHeader2 bool
	for _, r := range e.rcv.Requests() {
		sawHeader = sawHeader || r.Header.Get("Authorization") == header
		sawHeader2 = sawHeader2 || r.Header.Get("Authorization") == header2
	}
	if !sawHeader || !sawHeader2 {
		t.Errorf("the receiver never got the configured headers (%v, %v)", sawHeader, sawHeader2)
	}
	if !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("nothing was redacted: the echoed credentials should have been")
	}

	for i, line := range strings.Split(out.String(), "\n") {
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("line %d holds secret %q:\n%s", i+1, s, line)
			}
		}
	}
	if t.Failed() {
		t.Logf("everything printed:\n%s", out.String())
	}
}
