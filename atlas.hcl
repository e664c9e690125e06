// Atlas project file.
//
// The declarative schema is the list below, in dependency order: roles and
// the private schema first, then functions (table defaults call
// erun_current_tenant_id()), tables, indexes, triggers, row-level security,
// and foreign keys last. migrations/ holds the versioned migrations that
// produce exactly this schema; pgtenant's tests apply both and compare the
// catalogs, reading the order from this file.
//
// Open-source Atlas does not manage roles, functions, triggers or policies,
// so the migrations are written by hand (see the header of each file) and
// `pgtenant migrate` applies them with Atlas's migration executor.
locals {
  schema_src = [
    "file://schema/roles.sql",
    "file://schema/database.sql",
    "file://schema/extensions.sql",
    "file://schema/functions",
    "file://schema/tables",
    "file://schema/indexes",
    "file://schema/triggers",
    "file://schema/rls",
    "file://schema/fks",
  ]
}

env "local" {
  src = local.schema_src
  // The database to migrate, and an empty PostgreSQL 18 database Atlas may
  // use as scratch space (both are URLs).
  url = getenv("DATABASE_URL")
  dev = getenv("ATLAS_DEV_URL")
  migration {
    dir = "file://migrations"
  }
}
