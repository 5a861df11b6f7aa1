//go:build !linux

package outbox

import bolt "go.etcd.io/bbolt"

// fileMap: dropping mapped pages is done on Linux only.
type fileMap struct{}

func mappingOf(*bolt.Tx) fileMap { return fileMap{} }

type pageSpan struct{}

func (*pageSpan) add([]byte) {}

func (fileMap) dropSpan(pageSpan) {}

func (fileMap) dropAll() {}
