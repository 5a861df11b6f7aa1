// Package deps pins the project's dependencies while the packages that use
// them are being written. Remove once every import below is used elsewhere.
package deps

import (
	_ "github.com/hashicorp/go-retryablehttp"
	_ "github.com/jackc/pglogrepl"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/standard-webhooks/standard-webhooks/libraries/go"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/sync/errgroup"
	_ "gopkg.in/yaml.v3"
)
