// "Share with the vendor" on a run sheet: a read-only link to that vendor's part of the day
// (`POST .../day/run-sheets`), shown once, to copy and send; it expires two days after the
// wedding, and the couple or the planner may revoke it (`DELETE .../day/run-sheets/{id}`).

import { call, reasonOf } from './api.js'

export class RunSheetLinks {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/day/run-sheets`
    this.token = token
    this.onChange = onChange
    this.made = null // { vendor, url, expires_at }: the last link made, shown until another
    this.error = null // { vendor, reason }
    this.busy = false
  }

  /** The link made for `vendor` in this session, or null. */
  madeFor (vendor) {
    return this.made && this.made.vendor === vendor ? this.made : null
  }

  /** The reason a link for `vendor` was refused, or null. */
  refusedFor (vendor) {
    return this.error && this.error.vendor === vendor ? this.error.reason : null
  }

  async share (vendor) {
    if (this.busy) return
    this.busy = true
    this.error = null
    this.onChange()
    const answer = await call(this.token, this.base, 'POST', '', { vendor })
    this.busy = false
    if (answer.status === 201) {
      this.made = { vendor, url: answer.body.url, expires_at: answer.body.expires_at }
    } else {
      this.error = { vendor, reason: answer.status === 0 ? 'You are offline: try again when connected.' : reasonOf(answer) }
    }
    this.onChange()
  }
}
