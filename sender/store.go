package sender

import (
	"context"

	"github.com/deskhook/deskhook/outbox"
)

// Store is what the sender needs of the durable store (package outbox's
// *Outbox is one): it subscribes the endpoints, is told after each commit
// (outbox.Subscription.Notify), reads the pending deliveries of each
// endpoint, and records the outcomes. Everything the sender sends is read
// from the store, so it is durable before it is sent: after a crash the
// same event goes out again with the same body.
type Store interface {
	// SetSubscriptions registers the endpoints and what each wants;
	// appends queued after it fan out to them.
	SetSubscriptions(ctx context.Context, subs []outbox.Subscription) error
	// Pending reads an endpoint's deliverable entries, in key order.
	Pending(endpoint string, q outbox.PendingQuery) (outbox.PendingPage, error)
	// Record queues delivery outcomes for a later commit, without waiting.
	Record(results ...outbox.Result)
	// Flush waits until everything recorded or queued before it is
	// committed.
	Flush(ctx context.Context) error
	// Endpoint reads an endpoint's persisted state (enabled or disabled).
	Endpoint(name string) (outbox.EndpointState, error)
	// Endpoints reads every endpoint's state and queue, for the metrics.
	Endpoints() ([]outbox.EndpointStatus, error)
	// Disable stops deliveries to an endpoint until an operator enables it
	// (after 410 Gone).
	Disable(ctx context.Context, name, by, reason string) error
}
