package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"
)

// Large rows: the bodies an HTML mail pasted into a reply makes, for the
// memory tests and the bench (issue 12, point 7).

// largeWords are the words LargeBody is made of: plain text, markup and
// the characters that grow when encoded (JSON escapes, %XX in forms).
var largeWords = []string{"the", "printer", "is", "on", "fire", "&amp;", "smoking", "<b>again</b>", "ünïcödé",
	"100%", "\"quoted\"", "a+b", "C:\\path", "tab\there", "line\nbreak", "<a href=\"https://x.example/?a=1&b=2\">link</a>",
	"€", "日本語", "ok", "please", "call", "me", "back", "<br>", "—"}

// LargeBody returns an HTML body of exactly size bytes (valid UTF-8), the
// same for the same seed and different for different seeds.
func LargeBody(seed uint64, size int) string {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var b strings.Builder
	b.Grow(size + 64)
	fmt.Fprintf(&b, "<p>body %d:", seed)
	for b.Len() < size {
		if rng.IntN(40) == 0 {
			b.WriteString("</p>\n<p>")
		}
		b.WriteByte(' ')
		b.WriteString(largeWords[rng.IntN(len(largeWords))])
	}
	s := b.String()[:size]
	for !utf8.ValidString(s) { // cut inside a character: pad with spaces
		s = s[:len(s)-1]
	}
	return s + strings.Repeat(" ", size-len(s))
}

// AgentReplies adds several agent replies to a ticket in one transaction,
// as AgentReply adds one, and returns one Write per reply.
func (h *Helpdesk) AgentReplies(ctx context.Context, ticketID, agentID int64, bodies ...string) ([]Write, error) {
	at := h.now()
	ws := make([]Write, len(bodies))
	var committed time.Time
	err := h.db.inTx(ctx, func(tx sqlRunner) error {
		for i, body := range bodies {
			ws[i] = Write{TicketID: ticketID, At: at}
			if err := h.agentReply(ctx, tx, &ws[i], agentID, body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agent replies to ticket %d: %w", ticketID, err)
	}
	committed = time.Now()
	for i := range ws {
		ws[i].CommittedAt = committed
	}
	return ws, nil
}
