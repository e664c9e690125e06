// The compatibility scenario with postgres.js (prepare on, its default).
import postgres from 'postgres'
import { run, assert, env } from './scenario.mjs'

const sql = postgres(env.url, { max: 1 })

await run([
  ['crud', async () => {
    const [r] = await sql`INSERT INTO projects (name) VALUES ('compat-postgresjs') RETURNING tenant_id::text AS t`
    assert(r.t === env.a, 'tenant')
    assert((await sql`DELETE FROM projects WHERE name = 'compat-postgresjs'`).count === 1, 'delete')
  }],
  ['isolation', async () => assert((await sql`SELECT count(*)::int AS n FROM projects WHERE tenant_id = ${env.b}`)[0].n === 0, 'foreign rows')],
  ['prepared', async () => {
    for (let i = 0; i < 15; i++) assert((await sql`SELECT count(*)::int AS n FROM projects WHERE length(name) > ${i % 3}`)[0].n === 2, 'count')
  }],
  ['rollback', async () => {
    try { await sql.begin(async s => { await s`INSERT INTO projects (name) VALUES ('compat-rolled-back')`; throw new Error('undo') }) } catch (e) { if (e.message !== 'undo') throw e }
    assert((await sql`SELECT count(*)::int AS n FROM projects WHERE name = 'compat-rolled-back'`)[0].n === 0, 'rolled back')
  }],
  ['recovery', async () => {
    let failed = false
    try { await sql`SELECT 1/0` } catch (e) { failed = e.code === '22012' }
    assert(failed, 'division by zero')
    assert((await sql`SELECT 1 AS x`)[0].x === 1, 'after')
  }],
  ['large', async () => assert((await sql`SELECT generate_series(1, 100000)`).length === 100000, 'rows')],
  ['copy', async () => {
    let text = ''
    for await (const chunk of await sql`COPY (SELECT tenant_id FROM projects) TO STDOUT`.readable()) text += chunk
    const lines = text.trim().split('\n')
    assert(lines.length === 2 && lines.every(l => l === env.a), text)
    const w = await sql`COPY projects (name) FROM STDIN`.writable()
    await new Promise((resolve, reject) => { w.on('error', reject); w.on('finish', resolve); w.write('compat-copy-1\ncompat-copy-2\n'); w.end() })
    assert((await sql`SELECT count(*)::int AS n FROM projects WHERE name LIKE 'compat-copy-%' AND tenant_id = ${env.a}`)[0].n === 2, 'copied')
    await sql`DELETE FROM projects WHERE name LIKE 'compat-copy-%'`
  }],
  ['cancel', async () => {
    const q = sql`SELECT pg_sleep(10)`
    setTimeout(() => q.cancel(), 500)
    let code = ''
    try { await q } catch (e) { code = e.code }
    assert(code === '57014', 'cancelled: ' + code)
    assert((await sql`SELECT 1 AS x`)[0].x === 1, 'after')
  }],
  ['metadata', async () => assert((await sql`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'projects'`)[0].n === 6, 'columns')],
])
await sql.end()
