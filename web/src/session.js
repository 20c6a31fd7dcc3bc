// Who is signed in: the token from the sign-in link, kept for this tab only, and refreshed
// before it expires.
//
// The link carries the token in the URL fragment (#token=...), which browsers never send to
// a server. It is moved to sessionStorage at once and removed from the address bar, so it is
// neither bookmarked nor shared by copying the URL.

const TOKEN_KEY = 'crdt-server.token'

/** The problem types (RFC 9457 `type`) of a refresh that means this person lost the
 *  wedding for good: no member of it any more, or their device session ended. */
export const LOST_ACCESS = new Set(['urn:crdt-server:problem:not-a-member', 'urn:crdt-server:problem:session-ended'])

/** The token of this tab: from the link when there is one, else from session storage. */
export function takeToken () {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash)
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]))
    history.replaceState(null, '', location.pathname + location.search + '#guests')
  }
  return sessionStorage.getItem(TOKEN_KEY)
}

export function storeToken (token) {
  sessionStorage.setItem(TOKEN_KEY, token)
}

export function forgetToken () {
  sessionStorage.removeItem(TOKEN_KEY)
}

/** The claims of a JWT (not verified: the server does that; this only reads them). */
export function claimsOf (token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    const padded = part + '='.repeat((4 - (part.length % 4)) % 4)
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))
    const claims = JSON.parse(new TextDecoder().decode(bytes))
    const wedding = Array.isArray(claims.wedding) ? claims.wedding[0] : claims.wedding
    if (typeof claims.sub !== 'string' || typeof wedding !== 'string' || typeof claims.exp !== 'number') return null
    return { ...claims, wedding }
  } catch {
    return null
  }
}

/**
 * Keeps the token fresh: asks the server for a new one when three quarters of its life has
 * passed (a minute before it expires if that is earlier, but not before half of it). `onToken(token)` gets each new token,
 * `onSignedOut(reason)` is called when the server refuses (401): the session is over;
 * `onLost(problem)` instead when its problem type says the person lost the wedding
 * (`LOST_ACCESS`: not a member, session ended).
 * Network failures are retried, since an offline person is not signed out.
 */
export class TokenKeeper {
  /** `wedding`: set for a token of this device's session (it carries `sid`), which is
   *  renewed from the session's cookie (`POST /api/session/refresh`) and kept in memory only;
   *  otherwise the token came with a link and is exchanged for a fresh one. */
  constructor (token, { onToken, onSignedOut, onLost = null, wedding = null }) {
    this.token = token
    this.wedding = wedding
    this.onToken = onToken
    this.onSignedOut = onSignedOut
    this.onLost = onLost
    this.timer = 0
    this.schedule()
  }

  get claims () {
    return claimsOf(this.token)
  }

  /** Whether the current token is still valid for a few more seconds. */
  valid (marginSeconds = 2) {
    const claims = this.claims
    return claims !== null && claims.exp > Date.now() / 1000 + marginSeconds
  }

  schedule (delaySeconds = null) {
    clearTimeout(this.timer)
    const claims = this.claims
    if (!claims) {
      // No token yet (a device opened offline): ask again after the delay given.
      if (delaySeconds !== null) this.timer = setTimeout(() => this.refresh(), delaySeconds * 1000)
      return
    }
    const now = Date.now() / 1000
    const issued = typeof claims.iat === 'number' ? claims.iat : now
    // At three quarters of its life, or a minute before it ends if that is earlier; never
    // before half of it (a short-lived token is not exchanged again and again).
    const life = claims.exp - issued
    const due = issued + Math.max(0.5 * life, Math.min(0.75 * life, life - 60))
    const wait = delaySeconds ?? Math.max(1, due - now)
    this.timer = setTimeout(() => this.refresh(), wait * 1000)
  }

  /** Ask for a fresh token now; concurrent calls share one request. */
  refresh () {
    if (!this.pending) this.pending = this.exchange().finally(() => { this.pending = null })
    return this.pending
  }

  /** Whether this token belongs to a device session (its sockets outlive its expiry). */
  get device () {
    return this.wedding !== null
  }

  async exchange () {
    let response
    try {
      response = this.device
        ? await fetch('/api/session/refresh', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ wedding: this.wedding })
        })
        : await fetch('/api/token/refresh', {
          method: 'POST',
          headers: { Authorization: `Bearer ${this.token}` }
        })
    } catch {
      // Offline: try again soon, as long as the token may still be valid; a device opened
      // without one keeps asking (the browser may believe it is online all along, so no
      // `online` event would say the network is back).
      if (this.device && !this.token) this.schedule(3)
      else if (this.valid(0)) this.schedule(10)
      return
    }
    if (response.status === 401 || (this.device && response.status === 403)) {
      const problem = await response.json().catch(() => ({}))
      // Removed from the wedding, or the session over: what this device keeps of it goes.
      if (this.onLost && LOST_ACCESS.has(problem.type)) this.onLost(problem)
      else this.onSignedOut(problem.detail || 'your session ended')
      return
    }
    if (!response.ok) {
      this.schedule(30)
      return
    }
    const body = await response.json()
    this.token = body.token
    if (!this.device) storeToken(this.token)
    this.onToken(this.token, body)
    this.schedule()
  }

  stop () {
    clearTimeout(this.timer)
  }
}
