package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/roles"
	"github.com/pgtenant/pgtenant/pool"
)

// A server connection's context serial (DESIGN §1.2). Every tenant proof
// is bound to the backend's pid and to the current value of its serial, a
// temporary sequence that only moves forward. The proxy opens it when it
// dials and advances it after every loan, and lends the connection again
// only once it has seen the advance succeed: whatever proof a loan's
// client saw (its own, or another tenant's through any leak) is dead
// before anyone else gets the connection.

// openContextSerial is the query string SetupServerConn runs on a new
// connection. Its SELECT also finds settings of the login role that the
// role could have set itself: a tenant acting as the login role can ALTER
// ROLE CURRENT_USER SET any user-settable parameter, which would reach
// every later connection. pgtenant's own settings on the role
// (roles.PinnedSettings) are superuser-only. Such settings are already in
// force on this connection, so the query pins what it depends on itself
// (role, timeouts, search_path) before it runs.
var openContextSerial = ownSession + `;
BEGIN READ WRITE;
SET LOCAL search_path = pg_catalog, pg_temp;
SELECT public.erun_open_context_serial(),
    EXISTS (SELECT FROM pg_catalog.pg_db_role_setting AS s
                 CROSS JOIN LATERAL unnest(s.setconfig) AS c(setting)
                 LEFT JOIN pg_catalog.pg_settings AS p ON lower(p.name) = lower(split_part(c.setting, '=', 1))
             WHERE s.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user)
               AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
               AND (p.name IS NULL OR p.context = 'user')
               AND lower(split_part(c.setting, '=', 1)) <> ALL ('` + pinnedNames() + `'::text[]));
COMMIT;
RESET ALL`

// pinnedNames is roles.PinnedSettings' names as a text[] literal (plain
// identifiers: no quoting needed inside the SQL literal).
func pinnedNames() string {
	names := make([]string, len(roles.PinnedSettings))
	for i, p := range roles.PinnedSettings {
		names[i] = `"` + strings.ToLower(p.Name) + `"`
	}
	return "{" + strings.Join(names, ",") + "}"
}

// resetLoginSettings removes what openContextSerial found. Run by the login
// role, RESET ALL removes only the settings it could have made itself.
const resetLoginSettings = ownSession + `;
BEGIN READ WRITE;
ALTER ROLE CURRENT_USER RESET ALL;
DO $pgtenant$ BEGIN
    EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I RESET ALL', current_database());
END $pgtenant$;
COMMIT`

// ownSession comes before pgtenant's own statements on a connection: a
// client (on an earlier loan) or a setting of the login role may have left
// a role, a timeout or a read-only default behind. The settings are
// session-level; a RESET ALL after pgtenant's statements takes them back. transaction_timeout goes first: it may already be
// running for this very query string.
const ownSession = "SET transaction_timeout = 0; SET statement_timeout = 0; SET lock_timeout = 0; " +
	"SET idle_in_transaction_session_timeout = 0; SET ROLE NONE"

// advanceContextSerial ends a loan: every proof made for it dies. It runs
// outside the client's transaction, so RESET ALL here also takes back what
// the client set for the session in a transaction that rolled back, and
// the transaction defaults (default_transaction_read_only, …), which the
// next client's BEGIN would otherwise take before its frame's RESET ALL.
const advanceContextSerial = resetSession + "; SELECT nextval('pg_temp.erun_context_serial')"

// resetSession takes back whatever a loan left on the session.
const resetSession = "SET ROLE NONE; RESET ALL"

// advanceMsg is advanceContextSerial as a Query message. When the proxy
// sees a loan's end coming (its last message leaves the server idle), it
// sends advanceMsg in the same write, expecting advanceExpect: the serial
// moves on right after the client's transaction without a round trip of
// its own. Otherwise serverState.advance runs it when the loan ends.
var (
	advanceMsg    = appendQuery(nil, advanceContextSerial)
	advanceExpect = expect{kind: expAdvance, injected: true}
)

// errLoginSettings says why a new connection was replaced.
var errLoginSettings = errors.New("the login role had settings of its own")

// SetupServerConn prepares a new server connection before its first loan
// (pool.Config.Setup): it opens the context serial and repairs the login
// role's settings if a client changed them.
func SetupServerConn(ctx context.Context, pc *pgconn.PgConn) (any, error) {
	results, err := pc.Exec(ctx, openContextSerial).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("open the context serial: %w", err)
	}
	var row [][]byte // the one row of the string's one SELECT
	for _, r := range results {
		if len(r.Rows) == 1 && len(r.Rows[0]) == 2 {
			row = r.Rows[0]
		}
	}
	if row == nil {
		return nil, errors.New("open the context serial: unexpected result")
	}
	serial, err := strconv.ParseInt(string(row[0]), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("open the context serial: %w", err)
	}
	if string(row[1]) == "t" {
		if _, err := pc.Exec(ctx, resetLoginSettings).ReadAll(); err != nil {
			return nil, fmt.Errorf("reset the login role's own settings: %w", err)
		}
		return nil, fmt.Errorf("%w: %w", pool.ErrRedial, errLoginSettings)
	}
	st := newServerState()
	st.pid, st.serial = pc.PID(), serial
	return st, nil
}

// advance ends a loan of c. It reports false when the serial did not move
// exactly one step, which only a client can cause (by discarding it, or by
// advancing it itself): such a connection must be destroyed, never lent.
func (st *serverState) advance(c *pool.Conn) bool {
	next := int64(-1)
	err := runQuiet(c, advanceContextSerial, func(v []byte) {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			next = n
		}
	})
	if err != nil || next != st.serial+1 {
		return false
	}
	st.serial = next
	return true
}

// RestoreLoginPassword is the pool's Heal for a login role with this
// password: it sets the role's password back (as a SCRAM verifier, so the
// password itself never travels as SQL). Only the session user itself may
// change its own password, hence SET ROLE NONE (in ownSession).
func RestoreLoginPassword(password string) func(c *pool.Conn) error {
	return func(c *pool.Conn) error {
		verifier, err := roles.SCRAMVerifier(password)
		if err != nil {
			return err
		}
		// The verifier is base64 and '$' only: safe as a literal.
		return runQuiet(c, ownSession+"; BEGIN READ WRITE; ALTER ROLE CURRENT_USER PASSWORD '"+verifier+"'; COMMIT; RESET ALL", nil)
	}
}

// runQuiet runs sql on an idle connection the proxy holds, expects it to
// succeed and leave the server idle, and hands onValue the value of each
// one-column row.
func runQuiet(c *pool.Conn, sql string, onValue func([]byte)) error {
	c.Net.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.Net.SetDeadline(time.Time{})
	if _, err := c.W.Write(appendQuery(nil, sql)); err != nil {
		return err
	}
	if err := c.W.Flush(); err != nil {
		return err
	}
	r := msgReader{r: c.R}
	var failed error
	for {
		typ, body, err := r.next()
		if err != nil {
			return err
		}
		switch typ {
		case 'D':
			if v, ok := singleValue(body); ok && onValue != nil {
				onValue(v)
			}
		case 'E':
			failed = fmt.Errorf("%s (SQLSTATE %s)", errorField(body, 'M'), errorField(body, 'C'))
		case 'Z':
			if failed == nil && (len(body) != 1 || body[0] != 'I') {
				failed = errors.New("the server is not idle afterwards")
			}
			return failed
		}
	}
}
