// Package queryclient is a typed client for the aggregator's JSON query API
// (/api/v1, see package aggregator), used by the CLI (`fleetprof query`) and by the
// analyzer's tool layer. Selections are encoded as the server reads them: service,
// from, to (RFC 3339) and repeated filter=key=value; a diff prefixes each side with
// base_ and cmp_.
package queryclient
