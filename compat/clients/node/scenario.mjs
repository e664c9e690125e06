// The compatibility scenario, shared by both node clients: each step prints
// "ok <step>" or "fail <step>: reason".
export async function run(steps) {
  for (const [name, fn] of steps) {
    try {
      await fn()
      console.log('ok', name)
    } catch (e) {
      if (e instanceof NotApplicable) console.log('n/a', name + ':', e.message)
      else console.log('fail', name + ':', String(e && e.message || e).replace(/\n/g, ' '))
    }
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg)
}

export const env = { url: process.env.PGT_URL, a: process.env.PGT_TENANT_A, b: process.env.PGT_TENANT_B }

// NotApplicable marks a step the client library cannot do.
export class NotApplicable extends Error {}
