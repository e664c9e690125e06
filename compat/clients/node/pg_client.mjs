// The compatibility scenario with node-postgres (named prepared statements)
// and pg-copy-streams.
import pg from 'pg'
import { from as copyFrom, to as copyTo } from 'pg-copy-streams'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { run, assert, env, NotApplicable } from './scenario.mjs'

const c = new pg.Client({ connectionString: env.url })
await c.connect()
const one = async (q, v) => Object.values((await c.query(q, v)).rows[0])[0]

await run([
  ['crud', async () => {
    assert(await one("INSERT INTO projects (name) VALUES ('compat-pg') RETURNING tenant_id::text") === env.a, 'tenant')
    assert((await c.query("DELETE FROM projects WHERE name = 'compat-pg'")).rowCount === 1, 'delete')
  }],
  ['isolation', async () => assert(await one('SELECT count(*)::int FROM projects WHERE tenant_id = $1', [env.b]) === 0, 'foreign rows')],
  ['prepared', async () => {
    for (let i = 0; i < 15; i++) {
      const r = await c.query({ name: 'by-length', text: 'SELECT count(*)::int AS n FROM projects WHERE length(name) > $1', values: [i % 3] })
      assert(r.rows[0].n === 2, 'count')
    }
  }],
  ['rollback', async () => {
    await c.query('BEGIN'); await c.query("INSERT INTO projects (name) VALUES ('compat-rolled-back')"); await c.query('ROLLBACK')
    assert(await one("SELECT count(*)::int FROM projects WHERE name = 'compat-rolled-back'") === 0, 'rolled back')
  }],
  ['recovery', async () => {
    let failed = false
    try { await c.query('SELECT 1/0') } catch (e) { failed = e.code === '22012' }
    assert(failed, 'division by zero')
    assert(await one('SELECT 1') === 1, 'after')
  }],
  ['large', async () => assert((await c.query('SELECT generate_series(1, 100000)')).rowCount === 100000, 'rows')],
  ['copy', async () => {
    // node-postgres does COPY through its companion package pg-copy-streams.
    let text = ''
    for await (const chunk of c.query(copyTo('COPY (SELECT tenant_id FROM projects) TO STDOUT'))) text += chunk
    const lines = text.trim().split('\n')
    assert(lines.length === 2 && lines.every(l => l === env.a), text)
    await pipeline(Readable.from(['compat-copy-1\n', 'compat-copy-2\n']), c.query(copyFrom('COPY projects (name) FROM STDIN')))
    assert(await one("SELECT count(*)::int FROM projects WHERE name LIKE 'compat-copy-%' AND tenant_id = $1", [env.a]) === 2, 'copied')
    await c.query("DELETE FROM projects WHERE name LIKE 'compat-copy-%'")
  }],
  ['cancel', async () => { throw new NotApplicable('node-postgres has no cancel API (query_timeout only closes the connection)') }],
  ['metadata', async () => assert(await one("SELECT count(*)::int FROM information_schema.columns WHERE table_name = 'projects'") === 6, 'columns')],
])
await c.end()
