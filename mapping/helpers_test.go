package mapping

import (
	"bytes"
	"os"
)

// docsReplyPayload is Faveo's documented ticket_reply example as canonical
// JSON: the realistic payload the renderer tests and benchmarks use.
var docsReplyPayload = mustReadDocs("ticket_reply")

func mustReadDocs(event string) []byte {
	b, err := os.ReadFile("testdata/docs/" + event + ".json")
	if err != nil {
		panic(err)
	}
	return bytes.TrimSpace(b)
}
