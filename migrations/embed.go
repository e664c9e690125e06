// Package migrations embeds the versioned migrations (Atlas format, with
// atlas.sum) so that the pgtenant binary carries its schema.
package migrations

import "embed"

// FS holds the migration files and atlas.sum.
//
//go:embed *.sql atlas.sum
var FS embed.FS
