package schema_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/pgtest"
)

// tenantTable is a table found by walking the catalog for tenant_id columns.
type tenantTable struct {
	Name           string // schema-qualified where not public
	Reachable      bool   // erun_tenant holds some privilege on it or its columns
	NotNull        bool
	Type           string
	Default        string
	RLS, ForceRLS  bool
	LeadingIndex   bool // some index's first column is tenant_id
	FKToTenants    bool // tenant_id REFERENCES tenants(tenant_id)
	IsTenantsTable bool
}

const walkQuery = `
SELECT c.oid::regclass::text,
       has_table_privilege('erun_tenant', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
           OR has_any_column_privilege('erun_tenant', c.oid, 'SELECT,INSERT,UPDATE,REFERENCES'),
       a.attnotnull, format_type(a.atttypid, a.atttypmod),
       coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       c.relrowsecurity, c.relforcerowsecurity,
       EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum),
       EXISTS (SELECT FROM pg_constraint f WHERE f.conrelid = c.oid AND f.contype = 'f'
               AND f.confrelid = 'tenants'::regclass AND f.conkey = ARRAY[a.attnum]
               AND f.confkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'tenants'::regclass AND attname = 'tenant_id')]),
       c.oid = 'tenants'::regclass
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'atlas_schema_revisions')
ORDER BY 1`

func walkTenantTables(t *testing.T, conn *pgx.Conn) []tenantTable {
	t.Helper()
	rows, err := conn.Query(context.Background(), walkQuery)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenantTable, error) {
		var tt tenantTable
		err := r.Scan(&tt.Name, &tt.Reachable, &tt.NotNull, &tt.Type, &tt.Default, &tt.RLS, &tt.ForceRLS,
			&tt.LeadingIndex, &tt.FKToTenants, &tt.IsTenantsTable)
		return tt, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// tenantOwned returns the names of the tables tenants can reach.
func tenantOwned(t *testing.T, conn *pgx.Conn) []string {
	var names []string
	for _, tt := range walkTenantTables(t, conn) {
		if tt.Reachable {
			names = append(names, tt.Name)
		}
	}
	if len(names) == 0 {
		t.Fatal("the catalog walk found no tenant-owned table")
	}
	return names
}

// TestEveryTenantTableIsIsolated walks the catalog, not a list kept by hand:
// a table added later is checked without touching this test.
func TestEveryTenantTableIsIsolated(t *testing.T) {
	conn := pgtest.Connect(t, migrated(t))
	ctx := context.Background()
	tables := walkTenantTables(t, conn)
	owned, root := 0, 0
	for _, tt := range tables {
		t.Run(tt.Name, func(t *testing.T) {
			if tt.Type != "uuid" || !tt.NotNull {
				t.Errorf("tenant_id is %s notnull=%v, want uuid NOT NULL", tt.Type, tt.NotNull)
			}
			if !tt.LeadingIndex {
				t.Errorf("no index leads with tenant_id")
			}
			if !tt.IsTenantsTable && !tt.FKToTenants {
				t.Errorf("tenant_id does not reference tenants(tenant_id)")
			}
			if !tt.Reachable {
				// The resolution root (tenants, tenant_issuers): tenants
				// cannot touch it at all, so it needs no tenant policy.
				root++
				return
			}
			owned++
			if !tt.RLS || !tt.ForceRLS {
				t.Errorf("row-level security enabled=%v forced=%v, want both", tt.RLS, tt.ForceRLS)
			}
			if tt.Default != "erun_current_tenant_id()" {
				t.Errorf("tenant_id default is %q, want erun_current_tenant_id()", tt.Default)
			}
			checkPolicies(t, ctx, conn, tt.Name)
		})
	}
	if owned == 0 || root == 0 {
		t.Fatalf("walk found %d tenant-owned and %d root tables; expected both kinds", owned, root)
	}
}

func checkPolicies(t *testing.T, ctx context.Context, conn *pgx.Conn, table string) {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT policyname, permissive, roles::text[], cmd, coalesce(qual, ''), coalesce(with_check, '')
        FROM pg_policies WHERE format('%I.%I', schemaname, tablename)::regclass = $1::regclass`, table)
	if err != nil {
		t.Fatal(err)
	}
	type policy struct {
		name, permissive   string
		roles              []string
		cmd, using, check_ string
	}
	policies, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy, error) {
		var p policy
		return p, r.Scan(&p.name, &p.permissive, &p.roles, &p.cmd, &p.using, &p.check_)
	})
	if err != nil {
		t.Fatal(err)
	}
	bare := table[strings.LastIndex(table, ".")+1:]
	want := map[string]string{bare + "_tenant_policy": "erun_tenant", bare + "_operations_policy": "erun_operations"}
	if len(policies) != len(want) {
		t.Errorf("%d policies, want exactly %d (%v)", len(policies), len(want), want)
	}
	for _, p := range policies {
		role, ok := want[p.name]
		if !ok {
			t.Errorf("unexpected policy %s", p.name)
			continue
		}
		if len(p.roles) != 1 || p.roles[0] != role || p.cmd != "ALL" || p.permissive != "PERMISSIVE" {
			t.Errorf("%s: roles=%v cmd=%s %s, want TO %s FOR ALL PERMISSIVE", p.name, p.roles, p.cmd, p.permissive, role)
		}
		if p.using == "" || p.check_ == "" {
			t.Errorf("%s: USING %q WITH CHECK %q, want both", p.name, p.using, p.check_)
		}
		for _, expr := range []string{p.using, p.check_} {
			if strings.Contains(strings.ToUpper(expr), " OR ") {
				t.Errorf("%s: %q has an OR branch", p.name, expr)
			}
			// The tenant check must be an initplan: a sub-SELECT, not a
			// per-row call.
			if role == "erun_tenant" && !strings.Contains(expr, "tenant_id = ( SELECT erun_current_tenant_id()") {
				t.Errorf("%s: %q, want tenant_id = (SELECT erun_current_tenant_id())", p.name, expr)
			}
		}
	}
}

// TestTenantRoleReachesOnlyTenantTables: any table erun_tenant may touch has
// a tenant_id column (so the walk above covers it), and every SECURITY
// DEFINER function pins its search_path.
func TestTenantRoleReachesOnlyTenantTables(t *testing.T) {
	conn := pgtest.Connect(t, migrated(t))
	rows, err := conn.Query(context.Background(), `
        SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND (has_table_privilege('erun_tenant', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')
               OR has_any_column_privilege('erun_tenant', c.oid, 'SELECT,INSERT,UPDATE'))
          AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')`)
	if err != nil {
		t.Fatal(err)
	}
	unscoped, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(unscoped) > 0 {
		t.Errorf("erun_tenant can reach tables without tenant_id: %v", unscoped)
	}
	rows, err = conn.Query(context.Background(), `
        SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND NOT EXISTS (SELECT FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')`)
	if err != nil {
		t.Fatal(err)
	}
	unpinned, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(unpinned) > 0 {
		t.Errorf("SECURITY DEFINER functions without a pinned search_path: %v", unpinned)
	}
}
