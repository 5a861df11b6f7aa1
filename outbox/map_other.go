//go:build !linux

package outbox

import (
	"errors"
	"os"
)

// mapFile does not map here: the walk reads the pages.
func mapFile(*os.File, int64) ([]byte, func(), error) {
	return nil, nil, errors.New("not mapped")
}
