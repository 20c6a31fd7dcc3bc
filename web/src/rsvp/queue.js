// The RSVP page's offline queue: an answer is kept in the page's own storage (only keys
// that start with `rsvp:`, never the planner app's) with the Idempotency-Key it is sent
// with, until the server has it. A replay of that key gets the first answer back, so an
// answer sent twice (a lost reply, a reload, a reconnect) counts once.

export const PREFIX = 'rsvp:'
const PENDING = `${PREFIX}pending`
const PAGE = `${PREFIX}page`

function read (storage, key) {
  try {
    const value = JSON.parse(storage.getItem(key) || 'null')
    return value && typeof value === 'object' ? value : null
  } catch {
    return null
  }
}

function newKey () {
  const bytes = new Uint8Array(16)
  crypto.getRandomValues(bytes)
  return 'rsvp-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Keep `body` as the answer to send for `code` (replacing an older one not yet sent). */
export function keep (storage, code, body) {
  const pending = { code, key: newKey(), body, at: new Date().toISOString() }
  storage.setItem(PENDING, JSON.stringify(pending))
  return pending
}

/** The answer waiting to be sent for `code`, if any. */
export function pending (storage, code) {
  const found = read(storage, PENDING)
  return found && found.code === code && typeof found.key === 'string' ? found : null
}

/** The answer with `key` reached the server: forget it. */
export function sent (storage, key) {
  const found = read(storage, PENDING)
  if (found && found.key === key) storage.removeItem(PENDING)
}

/** The last page read for `code` (shown when the network is down). */
export function lastPage (storage, code) {
  const found = read(storage, PAGE)
  return found && found.code === code ? found.page : null
}

export function rememberPage (storage, code, page) {
  storage.setItem(PAGE, JSON.stringify({ code, page }))
}

/**
 * Send an answer kept by `keep`: `'sent'` (with the receipt), `'offline'` (kept, to be sent
 * again), or `'refused'` (with the server's problem; forgotten, as sending it again would
 * be refused again).
 */
export async function send (storage, entry, fetcher = fetch) {
  let response
  try {
    response = await fetcher(`/api/rsvp/${encodeURIComponent(entry.code)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': entry.key },
      body: JSON.stringify(entry.body)
    })
  } catch {
    return { state: 'offline' }
  }
  if (response.status >= 500 || response.status === 429) return { state: 'offline' }
  let json = null
  try { json = await response.json() } catch { json = null }
  sent(storage, entry.key)
  if (response.ok) return { state: 'sent', receipt: json }
  return { state: 'refused', status: response.status, problem: json }
}
