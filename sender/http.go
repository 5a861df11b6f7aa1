package sender

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/deskhook/deskhook/backoff"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// newClient builds an endpoint's HTTP client: its own connection pool (so
// one endpoint's trouble never holds another's connections), keep-alive
// with at least max_in_flight idle connections, redirects never followed.
//
// go-retryablehttp retries only what fails before the receiver could act
// on the request: a connection refused, reset or closed without an answer
// (a receiver restarting, a keep-alive connection it had just closed).
// Those are retried at once, with a short jittered wait, within the one
// attempt's timeout, and the attempt counts once in the schedule: a
// receiver's rolling restart does not cost an event a step of its retry
// schedule (5s, then 30s, ...). Answers (any HTTP status) and timeouts are
// never retried here: what to do with them is the persisted schedule's
// business, and a timeout has spent the attempt's budget.
func newClient(e *Endpoint) (*retryablehttp.Client, *http.Transport, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pool, err := loadCA(e.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("endpoint %q: ca_file: %w", e.Name, err)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   min(e.Timeout, 30*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          e.MaxInFlight * 2,
		MaxIdleConnsPerHost:   e.MaxInFlight * 2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(e.Timeout, 10*time.Second),
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConf,
		DisableCompression:    true,
	}
	hc := &http.Client{
		Transport:     tr,
		Timeout:       e.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		RetryMax:     transportRetries,
		RetryWaitMin: transportRetryMin,
		RetryWaitMax: transportRetryMax,
		CheckRetry:   retryTransport,
		Backoff: func(lo, hi time.Duration, try int, _ *http.Response) time.Duration {
			return backoff.Exp(try+1, lo, hi)
		},
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return rc, tr, nil
}

// Retries of a refused or broken connection within one attempt: up to
// transportRetries, the first after 25-50ms, the next after 50-100ms.
const (
	transportRetries  = 2
	transportRetryMin = 50 * time.Millisecond
	transportRetryMax = 250 * time.Millisecond
)

// retryTransport is the client's CheckRetry: a request is tried again when
// it failed at the transport for a reason that says the receiver did not
// get it (retryableTransportError) and the attempt's budget leaves room for
// another try. It never returns an error, so the client hands back the
// request's own.
func retryTransport(ctx context.Context, _ *http.Response, err error) (bool, error) {
	if err == nil || ctx.Err() != nil || !retryableTransportError(err) {
		return false, nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*transportRetryMax {
		return false, nil
	}
	return true, nil
}

// retryableTransportError: the connection was refused, reset, aborted or
// closed before an answer came. Not timeouts, TLS or DNS failures.
func retryableTransportError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	for _, target := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// verdict classifies one attempt.
type verdict uint8

const (
	verdictOK verdict = iota
	verdictFail
	verdictGone     // 410: disable the endpoint
	verdictCanceled // shut down mid-request: not an attempt
	verdictBroken   // the event cannot be rendered: dead at once
)

type attemptResult struct {
	verdict    verdict
	attempt    outbox.Attempt
	retryAfter time.Duration // from a 429/503 answer; 0: none
}

// requestTemplate is an endpoint's request without what changes per event:
// its URL is parsed once, and each request is a shallow copy with its own
// context, headers and body.
func requestTemplate(rawURL string) (*http.Request, error) {
	return http.NewRequestWithContext(context.Background(), http.MethodPost, rawURL, nil)
}

// worker is one request goroutine's scratch, reused from request to
// request.
type worker struct {
	drain  [4 << 10]byte // for reading answers
	tsUnix int64         // webhook-timestamp as of tsUnix
	ts     string
	own    *mapping.Event // an event read for this request alone (memory.go)
}

func (w *worker) timestamp(now time.Time) string {
	if s := now.Unix(); s != w.tsUnix || w.ts == "" {
		w.tsUnix, w.ts = s, strconv.FormatInt(s, 10)
	}
	return w.ts
}

// discard reads up to n bytes of r, so that the connection can be reused.
func (w *worker) discard(r io.Reader, n int) {
	for n > 0 {
		k, err := r.Read(w.drain[:min(n, len(w.drain))])
		n -= k
		if err != nil {
			return
		}
	}
}

// send makes one attempt to deliver ev.
func (ep *endpoint) send(ctx context.Context, w *worker, ev *mapping.Event) attemptResult {
	body, contentType, err := ep.renderBody(w, ev)
	if err != nil {
		return attemptResult{verdict: verdictBroken, attempt: outbox.Attempt{At: time.Now(), Error: "rendering the payload: " + err.Error()}}
	}
	now := time.Now()
	ts := w.timestamp(now)
	// The configured and fixed values are shared by every request (the
	// client copies the header before sending); the per-event values share
	// one array. Lower-case names as the Standard Webhooks spec writes them.
	h := make(http.Header, len(ep.headers)+5)
	for k, v := range ep.headers {
		h[k] = v
	}
	h["User-Agent"] = ep.userAgent
	vals := make([]string, 4)
	vals[0], vals[1], vals[3] = ev.ID, ts, contentType
	h["Content-Type"] = vals[3:4:4]
	h["webhook-id"] = vals[0:1:1]
	h["webhook-timestamp"] = vals[1:2:2]
	if len(ep.secrets) > 0 {
		vals[2] = sign(ep.secrets, ev.ID, ts, body)
		h["webhook-signature"] = vals[2:3:3]
	}
	// One attempt's budget is the endpoint's timeout, the client's quick
	// retries of a refused or broken connection included.
	actx, cancel := context.WithTimeout(ctx, ep.cfg.Timeout)
	defer cancel()
	hreq := ep.template.WithContext(actx)
	hreq.Header = h
	req := &retryablehttp.Request{Request: hreq}
	if err := req.SetBody(body); err != nil {
		return attemptResult{verdict: verdictBroken, attempt: outbox.Attempt{At: now, Error: "building the request: " + err.Error()}}
	}

	resp, err := ep.client.Do(req)
	res := attemptResult{attempt: outbox.Attempt{At: now, Latency: time.Since(now)}}
	if err != nil {
		if ctx.Err() != nil {
			res.verdict = verdictCanceled
			return res
		}
		res.verdict, res.attempt.Error = verdictFail, transportError(err)
		return res
	}
	defer resp.Body.Close()
	res.attempt.Status = resp.StatusCode
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		w.discard(resp.Body, 64<<10) // lets the connection be reused
		res.attempt.Latency = time.Since(now)
		return res
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, outbox.MaxResponseSnippet))
	w.discard(resp.Body, 64<<10)
	res.attempt.Latency = time.Since(now)
	res.attempt.Response = string(snippet)
	res.verdict = verdictFail
	switch code := resp.StatusCode; {
	case code == http.StatusGone:
		res.verdict = verdictGone
		res.attempt.Error = "410 Gone: endpoint disabled until an operator enables it"
	case code >= 300 && code < 400:
		res.attempt.Error = "redirect not followed"
		if loc := resp.Header.Get("Location"); loc != "" {
			res.attempt.Error += " (Location: " + RedactURL(loc) + ")"
		}
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return res
}

// sign computes the Standard Webhooks signature header: one "v1,<base64
// HMAC-SHA256(secret, id.timestamp.body)>" per secret, space-separated.
func sign(secrets [][]byte, id, ts string, body []byte) string {
	var b strings.Builder
	for i, key := range secrets {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
// 0 means none (or already past).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// transportError describes a failed exchange without the URL (which may
// hold credentials).
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}
